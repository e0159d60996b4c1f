"""The station key's own PEM reader and writer (``agent.protocol.keys``) against two independent
oracles: cryptography's full PEM parser and writer, and the ``openssl`` command. A key either
program writes loads as the same key; every forged or foreign file gives what cryptography's
parser gave before (the same key or the same error); a key others can read is refused."""

from __future__ import annotations

import binascii
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa, x25519
from cryptography.hazmat.primitives.serialization import (
    BestAvailableEncryption,
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from agent.protocol.keys import ed25519_seed, generate_key, load_private_key, pkcs8_pem
from core.errors import KeyFileError

OPENSSL = shutil.which("openssl")
needs_openssl = pytest.mark.skipif(OPENSSL is None, reason="openssl not installed")


def _pem(key: object, encryption: object = None) -> bytes:
    return key.private_bytes(  # type: ignore[attr-defined]
        Encoding.PEM, PrivateFormat.PKCS8, encryption or NoEncryption()
    )


def _write(path: Path, data: bytes, mode: int = 0o600) -> Path:
    path.write_bytes(data)
    os.chmod(path, mode)
    return path


def _old_load(path: Path) -> bytes | str:
    """What the agent did before it had its own reader: cryptography's parser (the oracle)."""
    try:
        key = load_pem_private_key(path.read_bytes(), password=None)
    except (ValueError, TypeError):
        return f"{path}: not an unencrypted PKCS#8 PEM private key"
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        return f"{path}: expected an Ed25519 key, found {type(key).__name__}"
    return key.private_bytes_raw()


def _new_load(path: Path) -> bytes | str:
    try:
        return load_private_key(path).private_bytes_raw()
    except KeyFileError as exc:
        return str(exc)


def _der_pem(der: bytes) -> bytes:
    body = binascii.b2a_base64(der, newline=False)
    lines = b"".join(body[i : i + 64] + b"\n" for i in range(0, len(body), 64))
    return b"-----BEGIN PRIVATE KEY-----\n" + lines + b"-----END PRIVATE KEY-----\n"


def test_a_key_cryptography_writes_loads_as_the_same_key_by_the_short_path(tmp_path):
    for i in range(20):
        key = ed25519.Ed25519PrivateKey.generate()
        path = _write(tmp_path / f"k{i}.key", _pem(key))
        assert ed25519_seed(path.read_bytes()) == key.private_bytes_raw()
        assert load_private_key(path).private_bytes_raw() == key.private_bytes_raw()


def test_the_written_pem_is_byte_for_byte_cryptographys():
    for _ in range(50):
        key = ed25519.Ed25519PrivateKey.generate()
        assert pkcs8_pem(key) == _pem(key)


@needs_openssl
def test_a_key_openssl_writes_loads_as_the_same_key(tmp_path):
    for i in range(5):
        path = tmp_path / f"o{i}.key"
        subprocess.run([OPENSSL, "genpkey", "-algorithm", "ed25519", "-out", str(path)], check=True)
        os.chmod(path, 0o600)
        public_der = subprocess.run(
            [OPENSSL, "pkey", "-in", str(path), "-pubout", "-outform", "DER"],
            check=True, capture_output=True,
        ).stdout  # fmt: skip
        assert ed25519_seed(path.read_bytes()) is not None  # openssl writes the 48-byte form
        key = load_private_key(path)
        assert key.public_key().public_bytes_raw() == public_der[-32:]


@needs_openssl
def test_openssl_reads_the_key_keygen_writes(tmp_path):
    key_path, _ = generate_key(tmp_path)
    public_der = subprocess.run(
        [OPENSSL, "pkey", "-in", str(key_path), "-pubout", "-outform", "DER"],
        check=True, capture_output=True,
    ).stdout  # fmt: skip
    assert load_private_key(key_path).public_key().public_bytes_raw() == public_der[-32:]


def _forgeries() -> dict[str, Callable[[], bytes]]:
    seed = ed25519.Ed25519PrivateKey.generate().private_bytes_raw()
    prefix = bytes.fromhex("302e020100300506032b657004220420")
    good = _der_pem(prefix + seed)
    public = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
    with_public = (  # PKCS#8 v2 (OneAsymmetricKey) carrying the public key as well
        bytes.fromhex("3051020101300506032b657004220420")
        + seed
        + bytes.fromhex("812100")
        + public.public_bytes(Encoding.Raw, PublicFormat.Raw)
    )
    return {
        "wrong version": lambda: _der_pem(prefix[:4] + b"\x01" + prefix[5:] + seed),
        "wrong algorithm (X25519's OID)": lambda: _der_pem(
            prefix.replace(b"\x2b\x65\x70", b"\x2b\x65\x6e") + seed
        ),
        "wrong inner length": lambda: _der_pem(prefix[:-1] + b"\x1f" + seed[:31]),
        "DER truncated": lambda: _der_pem(prefix + seed[:31]),
        "DER with a byte more": lambda: _der_pem(prefix + seed + b"\x00"),
        "PEM truncated": lambda: good[:60],
        "no END line": lambda: good.replace(b"-----END PRIVATE KEY-----\n", b""),
        "base64 garbled": lambda: good.replace(good.split(b"\n")[1][:4], b"!!!!"),
        "text after the key": lambda: good + b"trailing words\n",
        "two keys": lambda: good + good,
        "CRLF line ends": lambda: good.replace(b"\n", b"\r\n"),
        "public key attached (v2)": lambda: _der_pem(with_public),
        "X25519": lambda: _pem(x25519.X25519PrivateKey.generate()),
        "Ed448": lambda: _pem(ed448.Ed448PrivateKey.generate()),
        "P-256": lambda: _pem(ec.generate_private_key(ec.SECP256R1())),
        "RSA": lambda: _pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        "encrypted PEM": lambda: _pem(
            ed25519.Ed25519PrivateKey.from_private_bytes(seed), BestAvailableEncryption(b"pw")
        ),
        "traditional EC PEM": lambda: ec.generate_private_key(ec.SECP256R1()).private_bytes(
            Encoding.PEM, PrivateFormat.TraditionalOpenSSL, NoEncryption()
        ),
        "empty": lambda: b"",
        "not a key": lambda: b"not a key\n",
    }


@pytest.mark.parametrize("name", sorted(_forgeries()))
def test_a_forged_or_foreign_file_gives_what_cryptographys_parser_gave(name, tmp_path):
    path = _write(tmp_path / "station.key", _forgeries()[name]())
    assert _new_load(path) == _old_load(path)
    if name not in TAKEN_BY_CRYPTOGRAPHY:
        assert isinstance(_new_load(path), str), f"{name}: loaded as a key"


# Well-formed enough for cryptography's parser (the first block counts): loaded by it, as before.
TAKEN_BY_CRYPTOGRAPHY = (
    "CRLF line ends",
    "public key attached (v2)",
    "text after the key",
    "two keys",
)


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_a_key_group_or_others_can_read_is_refused(mode, tmp_path):
    path = _write(tmp_path / "station.key", _pem(ed25519.Ed25519PrivateKey.generate()), mode)
    with pytest.raises(KeyFileError, match=r"accessible by group/others .*chmod 600"):
        load_private_key(path)
