"""The ``sdi12`` driver: SDI-12 sensors on one bus (pyserial)."""
