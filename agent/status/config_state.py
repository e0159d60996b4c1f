"""The configuration in force, as ``status``, the page and the ``health`` record show it: the
sha256 of its file's bytes, and where it came from (local file; remote configuration later)."""

from __future__ import annotations

from typing import Any

from agent.config.model import Config, file_sha256


def config_state(config: Config) -> dict[str, Any]:
    """``digest`` (sha256 hex of the configuration file's bytes), ``source`` (``local`` or
    ``remote``), ``remote_version`` (None: local) and ``pinned`` (the technician pinned the
    local file). The one place these are read from."""
    return {
        "digest": file_sha256(config),
        "source": "local",
        "remote_version": None,
        "pinned": False,
    }
