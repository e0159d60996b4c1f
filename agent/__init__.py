"""station-agent: gets a station's raw readings, signed and complete, to the warehouse."""

__version__ = "0.1.0"
