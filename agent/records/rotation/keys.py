"""The key files of a rotation, beside the configured ``signing.key`` (here ``station.key``).

| file | what |
|---|---|
| ``station.key`` / ``station.jwk`` | the key in force (the config names the ``.key``) |
| ``station.key.next`` / ``station.jwk.next`` | made by ``rotate-key``, not in force yet |
| ``station.key.old-<kid>`` | the previous key, removed once every transport acked the rotation |
| ``station.jwk.old-<kid>`` | the previous public key (public, kept) |

Every private key file is created with O_EXCL and mode 0600, written and fsynced before it is
used, and never overwritten. ``switch`` replaces ``station.key`` by ``station.key.next`` with one
rename, after the old key was copied aside, so ``station.key`` holds a whole key at every instant
(the old one or the new one); the directory is fsynced after each step.
"""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

from agent.protocol.keys import load_private_key, pkcs8_pem
from agent.protocol.signer import Signer
from agent.support.logs import event
from core.errors import KeyFileError

log = logging.getLogger("agent.rotation")


class KeyFiles:
    """The files of the key in force, the next key and the retiring ones."""

    def __init__(self, key_path: Path) -> None:
        self.key = Path(key_path)
        self.jwk = self.key.with_suffix(".jwk")
        self.next_key = self.key.with_name(self.key.name + ".next")
        self.next_jwk = self.jwk.with_name(self.jwk.name + ".next")

    def old_key(self, kid: str) -> Path:
        return self.key.with_name(f"{self.key.name}.old-{kid}")

    def old_jwk(self, kid: str) -> Path:
        return self.jwk.with_name(f"{self.jwk.name}.old-{kid}")

    def retiring(self) -> dict[str, Path]:
        """kid -> file of every previous private key still kept."""
        prefix = f"{self.key.name}.old-"
        return {
            p.name[len(prefix) :]: p
            for p in sorted(self.key.parent.glob(f"{glob_escape(prefix)}*"))
            if p.is_file()
        }

    def holding(self, kid: str) -> Path | None:
        """The file beside ``station.key`` holding private key ``kid`` (a kept old key, or
        the next one), if any: what to put back when ``station.key`` is not the chain's key."""
        for path in (self.old_key(kid), self.next_key):
            try:
                if Signer(load_private_key(path)).kid == kid:
                    return path
            except (OSError, KeyFileError):
                continue
        return None

    def load(self) -> Signer:
        return Signer(load_private_key(self.key))

    def load_next(self) -> Signer | None:
        """The key ``rotate-key`` left, or None if there is none."""
        if not self.next_key.exists():
            return None
        return Signer(load_private_key(self.next_key))

    def make_next(self) -> Signer:
        """Create ``station.key.next`` (0600, O_EXCL, fsynced) and its public JWK."""
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        key = Ed25519PrivateKey.generate()
        pem = pkcs8_pem(key)
        _write_new(self.next_key, pem, 0o600)
        signer = Signer(key)
        _replace(self.next_jwk, _jwk_text(signer.jwk))
        _sync_dir(self.key.parent)
        return signer

    def switch(self, old: Signer, new: Signer) -> None:
        """Make ``new`` (the key in ``station.key.next``) the key in force; keep ``old`` aside.
        Safe to run again after a crash at any point of it."""
        if self.next_key.exists():
            # station.key is still the old key: the copy is made (again) from it, whole or not
            # at all (written aside, then renamed), so a crash while copying never leaves a torn
            # copy that would stop the next start.
            kept = self.old_key(old.kid)
            pem = self.key.read_bytes()
            if not kept.exists() or kept.read_bytes() != pem:
                aside = kept.with_name(f".{kept.name}.tmp")
                aside.unlink(missing_ok=True)
                _write_new(aside, pem, 0o600)
                os.replace(aside, kept)
            _sync_dir(self.key.parent)
            os.replace(self.next_key, self.key)  # atomic: station.key is old or new, never none
            _sync_dir(self.key.parent)
        self.publish(new)

    def publish(self, signer: Signer) -> None:
        """Make ``station.jwk`` the public key of ``signer`` (the previous one kept aside)."""
        current = _read_kid(self.jwk)
        if current == signer.kid:
            self.next_jwk.unlink(missing_ok=True)
            return
        if current is not None and not self.old_jwk(current).exists():
            os.replace(self.jwk, self.old_jwk(current))
        _replace(self.jwk, _jwk_text(signer.jwk))
        self.next_jwk.unlink(missing_ok=True)
        _sync_dir(self.jwk.parent)

    def retire(self, kid: str) -> Path | None:
        """Remove the kept private key ``kid`` (fsynced); returns its path if it was there."""
        path = self.old_key(kid)
        if not path.exists():
            return None
        path.unlink()
        _sync_dir(path.parent)
        event(log, logging.INFO, "old_key_retired", kid=kid, file=str(path))
        return path


def glob_escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in text)


def _jwk_text(jwk: dict[str, str]) -> str:
    return json.dumps(jwk, indent=2) + "\n"


def _read_kid(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    kid = data.get("kid") if isinstance(data, dict) else None
    return kid if isinstance(kid, str) else "unknown"


def _write_new(path: Path, data: bytes, mode: int) -> None:
    """Create ``path`` (never overwriting), write ``data`` and fsync it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key file") from None
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _replace(path: Path, text: str) -> None:
    """Write a public file atomically (temporary file, fsync, rename)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    _write_new(tmp, text.encode(), 0o644)
    os.replace(tmp, path)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
