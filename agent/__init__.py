"""station-agent: gets a station's raw readings, signed and complete, to the warehouse."""

__version__ = "0.1.0"

import sys

# httpx imports its command line (click, rich, pygments: 5 MiB of RSS) whenever those happen to
# be installed; the agent never runs it. A None entry makes that import fail, and httpx then
# defines a stub in its place (``httpx.main``), as it does when they are not installed.
sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]
