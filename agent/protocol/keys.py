"""The station's Ed25519 signing key: generation, safe loading, and its public JWK.

A key in the form ``keygen``, ``cryptography`` and ``openssl genpkey -algorithm ed25519`` write
(PEM, PKCS#8 without attributes or public key: a fixed 16-byte DER prefix, then the 32-byte
seed) is read here; any other file goes to cryptography's full PEM parser, which gives the
errors (and finds the other key types) as before. cryptography's ``serialization`` package, which
that parser needs, costs ~1.7 MiB of the running agent's memory and ~15 ms of each command that
reads the key (it imports its SSH and PKCS#12 modules and bcrypt). cryptography itself is
imported where a key is made or read: ``status`` reads key files by name only (issue 33).
"""

from __future__ import annotations

import binascii
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from agent.protocol.jws import public_jwk
from agent.support.bounded import read_secret_file
from core.errors import KeyFileError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    key = Ed25519PrivateKey.generate()
    pem = pkcs8_pem(key)
    # O_EXCL + mode 0600 at creation: the key is never readable by others, not even briefly.
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
        f.flush()
        os.fsync(f.fileno())
    jwk_path.write_text(json.dumps(public_jwk(key.public_key()), indent=2) + "\n")
    return key_path, jwk_path


# RFC 8410 PrivateKeyInfo: SEQUENCE { INTEGER 0, SEQUENCE { OID 1.3.101.112 }, OCTET STRING {
# OCTET STRING (32 bytes) } }, everything but the seed.
_ED25519_PKCS8_PREFIX = bytes.fromhex("302e020100300506032b657004220420")
_PEM_BEGIN = b"-----BEGIN PRIVATE KEY-----"
_PEM_END = b"-----END PRIVATE KEY-----"


def pkcs8_pem(key: Ed25519PrivateKey) -> bytes:
    """``key`` as an unencrypted PKCS#8 PEM, as ``cryptography``'s ``private_bytes`` writes it."""
    der = base64_lines(_ED25519_PKCS8_PREFIX + key.private_bytes_raw())
    return _PEM_BEGIN + b"\n" + der + _PEM_END + b"\n"


def base64_lines(data: bytes) -> bytes:
    """PEM's body: base64 in lines of 64 characters, each ending with a newline."""
    text = binascii.b2a_base64(data, newline=False)
    return b"".join(text[i : i + 64] + b"\n" for i in range(0, len(text), 64))


def ed25519_seed(pem: bytes) -> bytes | None:
    """The seed of a PEM PKCS#8 Ed25519 key in its usual 48-byte form (one block, nothing else
    in the file but surrounding whitespace); None for anything else."""
    lines = pem.strip().split(b"\n")
    if len(lines) < 3 or lines[0] != _PEM_BEGIN or lines[-1] != _PEM_END:
        return None
    try:
        der = binascii.a2b_base64(b"".join(lines[1:-1]), strict_mode=True)
    except binascii.Error:
        return None
    if len(der) != 48 or not der.startswith(_ED25519_PKCS8_PREFIX):
        return None
    return der[len(_ED25519_PKCS8_PREFIX) :]


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
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    seed = ed25519_seed(pem)
    if seed is not None:
        return Ed25519PrivateKey.from_private_bytes(seed)
    from cryptography.hazmat.primitives.serialization import load_pem_private_key  # other forms

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
