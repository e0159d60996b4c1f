"""The station's Ed25519 signing key: generation, safe loading, and its public JWK."""

from __future__ import annotations

import json
import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    load_pem_private_key,
)

from agent.protocol.jws import public_jwk
from agent.support.bounded import read_secret_file
from core.errors import KeyFileError

KEY_NAME = "station.key"
JWK_NAME = "station.jwk"


def generate_key(out_dir: Path, name: str = "station") -> tuple[Path, Path]:
    """Create ``{name}.key`` (PKCS#8 PEM, 0600) and ``{name}.jwk``; never overwrite. ``name``
    ``warehouse``: the key a warehouse signs acknowledgements with (docs/protocol.md)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    key_path, jwk_path = out_dir / f"{name}.key", out_dir / f"{name}.jwk"
    for path in (key_path, jwk_path):
        if path.exists():
            raise KeyFileError(f"{path}: already exists; refusing to overwrite a station key")
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    # O_EXCL + mode 0600 at creation: the key is never readable by others, not even briefly.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    jwk_path.write_text(json.dumps(public_jwk(key.public_key()), indent=2) + "\n")
    return key_path, jwk_path


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """Load the station key: a regular file of the agent's user, mode 0600, at most 64 KiB."""
    if not path.exists():
        raise KeyFileError(
            f"{path}: signing key not found (create one with: station-agent keygen --out DIR)"
        )
    try:
        pem = read_secret_file(path, "signing key")
    except ValueError as exc:
        raise KeyFileError(str(exc)) from None
    try:
        key = load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{path}: not an unencrypted PKCS#8 PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: expected an Ed25519 key, found {type(key).__name__}")
    return key


def load_jwk(path: Path) -> dict:
    """Read a public JWK file."""
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise KeyFileError(f"{path}: JWK file not found") from None
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a JSON JWK: {exc}") from None
    if not isinstance(data, dict):
        raise KeyFileError(f"{path}: expected a JSON object (a JWK)")
    return data
