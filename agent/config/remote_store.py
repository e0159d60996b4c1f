"""What the agent keeps of remote configuration beside its buffer, crash-safe (issue 32).

``<buffer>.remote/`` holds each applied document's TOML as ``config-<version>.toml`` (written,
fsynced, renamed before anything names it) and ``state.json``, the one commit point: replaced
whole by a rename (fsync of the file, then of the folder), so a kill -9 at any moment leaves
either the old state naming the old configuration or the new one naming the new, whole, file.
``pinned`` (a marker file, ``station-agent config pin``) makes the agent refuse documents and
run on the local file.

``state.json``: ``effective`` (what the running agent runs: source, version, digest, kid),
``remote`` (the remote document in force, with the local file's digest when it was applied,
or null), ``last_good`` (the configuration before it, for a rollback), ``max_version`` (no
document at or below it is applied again), ``applied`` (version -> digest of the documents
applied: a replay is named as such), ``log_level`` (a remote level and its end).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

MAX_STATE_BYTES = 256 * 1024
MAX_TOML_BYTES = 96 * 1024
KEEP_APPLIED = 64  # versions remembered as applied (to call a replay a replay)


def sha256_hex(data: bytes) -> str:
    """SHA-256 of ``data``, hex."""
    return hashlib.sha256(data).hexdigest()


def file_digest(path: Path) -> str | None:
    """SHA-256 (hex) of a configuration file's bytes; None if it cannot be read."""
    try:
        with open(path, "rb") as f:
            return sha256_hex(f.read(1024 * 1024 + 1))
    except OSError:
        return None


def remote_dir(buffer_path: Path) -> Path:
    """The folder beside the buffer: ``<buffer>.remote``."""
    return buffer_path.with_name(buffer_path.name + ".remote")


@dataclass
class Source:
    """One configuration: the local file, or a remote document (version, file, signer)."""

    source: str  # "local" | "remote"
    digest: str
    version: int | None = None
    kid: str | None = None
    file: str | None = None  # config-<version>.toml in the folder (remote)
    local_digest: str | None = None  # the local file's digest when this remote one was applied


@dataclass
class RemoteState:
    """``state.json``."""

    effective: Source | None = None
    remote: Source | None = None
    last_good: Source | None = None
    max_version: int = 0
    applied: dict[str, str] = field(default_factory=dict)
    log_level: dict[str, str] | None = None
    pinned: bool = False  # as last seen by the agent (a change is recorded)
    local_path: str | None = None  # the local configuration file
    local_edited_at: str | None = None  # when a reload found the local file edited (RFC 3339)
    probation: dict[str, Any] | None = (
        None  # the one running (``Probation.saved``): a restart resumes it
    )

    def to_json(self) -> bytes:
        return json.dumps({"v": 1, **asdict(self)}, sort_keys=True).encode()


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and len(value) <= 64 else None


def _source(data: Any) -> Source | None:
    if not isinstance(data, dict):
        return None
    try:
        return Source(**data)
    except TypeError:
        return None


class RemoteStore:
    """The folder ``<buffer>.remote`` and what is in it."""

    def __init__(self, buffer_path: Path) -> None:
        self.dir = remote_dir(buffer_path)

    @property
    def pinned(self) -> bool:
        """``station-agent config pin`` was given (and no ``unpin`` since)."""
        return (self.dir / "pinned").exists()

    def set_pinned(self, pinned: bool) -> None:
        """Create or remove the ``pinned`` marker (durably)."""
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        marker = self.dir / "pinned"
        if pinned:
            self._write(marker, b"pinned by station-agent config pin\n")
        else:
            marker.unlink(missing_ok=True)
            _fsync_dir(self.dir)

    def load(self) -> RemoteState:
        """The state; an empty one when there is none (or it is unreadable: said by ``error``)."""
        self.error: str | None = None
        try:
            with open(self.dir / "state.json", "rb") as f:
                raw = f.read(MAX_STATE_BYTES + 1)
            data = json.loads(raw) if len(raw) <= MAX_STATE_BYTES else None
        except FileNotFoundError:
            return RemoteState()
        except (OSError, ValueError) as exc:
            self.error = f"{self.dir / 'state.json'}: unreadable ({exc})"
            return RemoteState()
        if not isinstance(data, dict) or data.get("v") != 1:
            self.error = f"{self.dir / 'state.json'}: not a state file of version 1"
            return RemoteState()
        applied = data.get("applied")
        return RemoteState(
            effective=_source(data.get("effective")),
            remote=_source(data.get("remote")),
            last_good=_source(data.get("last_good")),
            max_version=int(data.get("max_version") or 0),
            applied=applied if isinstance(applied, dict) else {},
            log_level=data.get("log_level") if isinstance(data.get("log_level"), dict) else None,
            pinned=data.get("pinned") is True,
            local_path=data.get("local_path") if isinstance(data.get("local_path"), str) else None,
            local_edited_at=_text(data.get("local_edited_at")),
            probation=data.get("probation") if isinstance(data.get("probation"), dict) else None,
        )

    def save(self, state: RemoteState) -> None:
        """Replace ``state.json`` whole (the commit point), then drop documents it no longer
        names."""
        if len(state.applied) > KEEP_APPLIED:
            keep = sorted(state.applied, key=int)[-KEEP_APPLIED:]
            state.applied = {k: state.applied[k] for k in keep}
        self._write(self.dir / "state.json", state.to_json())
        named = {s.file for s in (state.effective, state.remote, state.last_good) if s and s.file}
        for old in self.dir.glob("config-*.toml"):
            if old.name not in named:
                old.unlink(missing_ok=True)

    def write_document(self, version: int, text: str) -> str:
        """Write a document's TOML durably as ``config-<version>.toml``; its file name."""
        name = f"config-{version}.toml"
        self._write(self.dir / name, text.encode("utf-8"))
        return name

    def read_document(self, source: Source) -> str | None:
        """The TOML of a remote ``source``, if its file is there whole (its digest matches)."""
        if source.file is None or "/" in source.file:
            return None
        try:
            with open(self.dir / source.file, "rb") as f:
                raw = f.read(MAX_TOML_BYTES + 1)
        except OSError:
            return None
        if sha256_hex(raw) != source.digest:
            return None
        return raw.decode("utf-8", "replace")

    def _write(self, path: Path, data: bytes) -> None:
        self.dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        _fsync_dir(self.dir)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
