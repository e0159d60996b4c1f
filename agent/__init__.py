"""station-agent: gets a station's raw readings, signed and complete, to the warehouse."""

__version__ = "0.1.0"

import sys
import types

# pydantic looks for plugins the first time it builds a validator: its loader imports
# importlib.metadata (with email, zipfile, csv) and reads every installed package's entry points.
# The agent runs no pydantic plugin; a loader that finds none takes its place (issue 17: with
# the command line's own scan made lazy, ~0.6 MiB of idle RSS); tests/config/test_lazy_models.py
# checks that importlib.metadata stays out of the process.
_no_plugins = types.ModuleType("pydantic.plugin._loader")
_no_plugins.get_plugins = lambda: ()  # type: ignore[attr-defined]
sys.modules.setdefault("pydantic.plugin._loader", _no_plugins)
