"""The configuration in force, as ``status``, the page and the ``health`` record show it (issue
32): the digest of the local file on disk now, the effective configuration's digest and source,
the remote version in force, and whether the local file is pinned. The one place these are read
from: ``<buffer>.remote/state.json`` (``agent.config.remote_store``) when remote configuration
was ever enabled, else the configuration loaded (its file's bytes)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.config.model import Config, file_sha256
from agent.config.remote_store import RemoteStore, file_digest


def config_state(config: Config, config_path: Path | None = None) -> dict[str, Any]:
    """``digest`` (sha256 hex of the effective configuration's TOML bytes), ``source``
    (``local`` or ``remote``), ``remote_version`` (None: local), ``pinned``, ``file_digest``
    (the local file's bytes on disk now: differs from ``digest`` while a remote document is in
    force, or the file was edited and not reloaded; None: no local file known)."""
    store = RemoteStore(config.buffer.path)
    state = store.load()
    local = state.local_path or (str(config_path) if config_path is not None else None)
    on_disk = file_digest(Path(local)) if local else None
    effective = state.effective
    if effective is None:
        return {
            "digest": file_sha256(config),
            "source": "local",
            "remote_version": None,
            "pinned": store.pinned,
            "file_digest": on_disk,
        }
    return {
        "digest": effective.digest,
        "source": effective.source,
        "remote_version": effective.version if effective.source == "remote" else None,
        "pinned": store.pinned,
        "file_digest": on_disk,
    }
