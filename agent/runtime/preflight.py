"""The one preflight: what ``run`` requires of a configuration before it starts, and nothing else.

``config validate``, ``run`` and a reload (SIGHUP) all go through ``load_checked``: the file is
parsed and validated (``agent.config.model``, which also reads secret files: a token shorter than 16
characters, a password file of mode 0644 are refused there), then ``preflight`` checks what the
file names on disk. So a file that validates starts, and one that does not gets the same lines,
``file: field.path: what was expected``, from all three.

Checked here, without creating or changing anything but SQLite's -wal and -shm files beside an
existing buffer (``config validate`` runs it beside a running agent, as ``status`` does): the
signing key loads (present, a regular file of this user, mode 0600, an Ed25519 PKCS#8 key); the
buffer's file can be opened and its directory exists or can be made and written to by this user; an
existing buffer of this user opens (read-only) and its chain names this key
(``agent.records.rotation.state.key_to_switch_to``); every file a transport names is there and
readable, its TLS files load as the transport will load them, and its ``ack_keys`` (the
warehouse's public keys) are one or more Ed25519 JWKs.

Not checked, because ``run`` does not refuse them: a listening port in use or a host that does
not resolve (a listening device or the station page is retried and logged, the others work on),
another agent already running on the buffer (``run`` says so itself; ``validate`` is meant to
run beside it). One difference is deliberate: with ``unresolved`` given (``config validate``), a
secret named by an environment variable that this shell does not have is a warning, since the
service gets its environment from ``secrets.env``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from agent.buffer import Buffer
from agent.config.model import Config, load_config, parse_config_bytes
from agent.protocol.keys import load_private_key
from agent.protocol.signed_ack import AckKeys
from agent.protocol.signer import Signer
from agent.records.rotation.keys import KeyFiles
from agent.records.rotation.state import key_to_switch_to
from agent.status.health import health_path
from agent.support.bounded import read_secret_file
from agent.support.instance_lock import lock_path
from agent.support.sections import TlsConfig
from core.errors import ConfigError, KeyFileError, StorageError, VerificationError


@dataclass(frozen=True)
class Problem:
    """One thing that keeps the agent from starting: the field that names it, what was found
    and what was expected."""

    field: str
    expected: str

    def line(self, config_path: Path | str) -> str:
        """``file: field.path: what was expected``."""
        return f"{config_path}: {self.field}: {self.expected}"


def preflight(config: Config) -> list[Problem]:
    """Everything on disk that would keep ``run`` from starting on ``config``; [] if none.
    Reads only: nothing is made but SQLite's -wal/-shm files beside an existing buffer."""
    key, problems = _signing_key(config)
    buffer = _buffer(config.buffer.path)
    path = config.buffer.path
    # SQLite may make the buffer's -wal and -shm files when it opens it, even read-only: only
    # as the buffer's owner, so they never belong to another user than the agent's.
    if not buffer and key is not None and path.exists() and path.stat().st_uid == os.geteuid():
        buffer = _chain(config, key)
    return [*problems, *buffer, *_transport_files(config), *_remote_keys(config)]


def _remote_keys(config: Config) -> list[Problem]:
    """``[remote_config] keys`` loads as the agent will load it."""
    rc = config.remote_config
    if rc is None or not rc.enabled or rc.keys is None:
        return []
    keys = rc.keys
    try:
        AckKeys.load(keys)
    except VerificationError as exc:
        return [Problem("remote_config.keys", str(exc))]
    return []


def load_checked(path: Path | str, *, unresolved: list[str] | None = None) -> Config:
    """Load ``path`` and run ``preflight``; raise ``ConfigError`` with one line per problem.

    ``unresolved``: tolerate secrets in environment variables this shell lacks, and list them
    there (``config validate``); without it every secret must be readable (``run``)."""
    secrets: bool | Literal["files"] = True if unresolved is None else "files"
    config = load_config(path, secrets=secrets, unresolved=unresolved)
    return _checked(config, path)


def load_checked_bytes(raw: bytes, path: Path) -> Config:
    """``load_checked`` of a file's bytes as if read from ``path`` (a remote document's TOML:
    relative paths resolve beside the local file), as ``run`` checks it."""
    return _checked(parse_config_bytes(raw, path), path)


def _checked(config: Config, path: Path | str) -> Config:
    problems = preflight(config)
    if problems:
        raise ConfigError("\n".join(p.line(path) for p in problems))
    return config


def _signing_key(config: Config) -> tuple[Ed25519PrivateKey | None, list[Problem]]:
    try:
        return load_private_key(config.signing.key), []
    except KeyFileError as exc:
        return None, [Problem("signing.key", str(exc))]


def _chain(config: Config, key: Ed25519PrivateKey) -> list[Problem]:
    """An existing buffer opens, and its chain names this key (or ``station.key.next``, whose
    switch the start finishes: ``agent.records.rotation.record``)."""
    try:
        buffer = Buffer(config.buffer.path, read_only=True)
    except StorageError as exc:
        return [Problem("buffer.path", str(exc))]
    try:
        key_to_switch_to(KeyFiles(config.signing.key), Signer(key), buffer)
    except KeyFileError as exc:
        return [Problem("signing.key", str(exc))]
    except StorageError as exc:
        return [Problem("buffer.path", str(exc))]
    finally:
        buffer.close()
    return []


def _buffer(path: Path) -> list[Problem]:
    """The buffer file (and its lock and health files) if they exist; else the nearest existing
    folder."""
    where = "buffer.path"
    beside = ((lock_path(path), "buffer's lock file"), (health_path(path), "health file"))
    for file, what in ((path, "buffer"), *beside):
        if file.exists() and not file.is_file():
            return [Problem(where, f"{file}: the {what} is not a regular file")]
        if file.exists() and not os.access(file, os.R_OK | os.W_OK):
            return [Problem(where, f"{file}: the {what} cannot be read and written {_by_us()}")]
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent  # the nearest existing ancestor: the rest is made at start
    made = "" if folder == path.parent else f" (to make {path.parent} in it)"
    if not folder.is_dir():
        return [Problem(where, f"{folder} is a file, not a folder: no buffer can be made in it")]
    if not os.access(folder, os.W_OK | os.X_OK):
        return [Problem(where, f"folder {folder} cannot be written {_by_us()}{made}")]
    return []


def _by_us() -> str:
    return f"by this user (uid {os.geteuid()})"


def _transport_files(config: Config) -> list[Problem]:
    problems = []
    for i, section in enumerate(config.transports):
        missing = False
        for key, file in section.files().items():
            found = None
            if not file.exists():
                found = "file not found"
            elif not file.is_file():
                found = "not a regular file"
            elif not os.access(file, os.R_OK):
                found = f"cannot be read {_by_us()}"
            if found is not None:
                problems.append(Problem(f"transports[{i}].{key}", f"{file}: {found}"))
                missing = True
        tls = getattr(section, "tls", None)
        if isinstance(tls, TlsConfig) and not missing:
            problems.extend(_tls(tls, f"transports[{i}].tls"))
        ack_keys = getattr(section, "ack_keys", None)
        if isinstance(ack_keys, Path) and not missing:
            try:
                AckKeys.load(ack_keys)  # as the transport will load it
            except VerificationError as exc:
                problems.append(Problem(f"transports[{i}].ack_keys", str(exc)))
    return problems


def _tls(tls: TlsConfig, where: str) -> list[Problem]:
    """Load the TLS files as the transport will (``client_context``). A client key whose
    password this shell does not have (``key_password_env`` unset) is checked without it."""
    from agent.transports.tls import client_context  # ssl: only for a station that uses TLS

    if tls.key_password is None and tls.key_password_env is not None and tls.key_file:
        try:
            read_secret_file(tls.key_file, "tls.key_file")  # 0600, ours, small: as the transport
        except ValueError as exc:
            return [Problem(f"{where}.key_file", str(exc))]
        tls = tls.model_copy(update={"cert_file": None, "key_file": None})
    try:
        client_context(tls)
    except ConfigError as exc:
        return [Problem(where, str(exc))]
    return []
