"""Signed acknowledgements: the warehouse's own Ed25519 key signs every answer it gives a batch.

One place for every front (the HTTPS intake, the NATS and MQTT ``$share`` workers, the reference
warehouse): an acknowledgement is the JSON object of docs/protocol.md (``seq``, ``digest``,
``result``, ``reason``) plus ``jws``, a compact JWS over the statement::

    {"v":1,"kind":"ack","station":"HN-01","seq":17,"digest":"…","result":"stored","reason":""}

(compact JSON, ASCII, members in this order) with the protected header, byte for byte,
``{"alg":"Ed25519","kid":"<RFC 7638 thumbprint of the warehouse key>","typ":"JOSE"}``. A
station pinning the warehouse's public key believes only the signed statement; a station
without one (and an agent from before signed acks) reads the plain members, as before.

The whole acknowledgement is at most 3 KiB (the reason is cut to fit), so that an MQTT ack and
an HTTPS answer (which adds ``status`` and ``message``) stay within the 4 KiB a station reads.
The warehouse imports only ``core``, so it signs with ``cryptography`` directly, not with the
agent's JWS code (which verifies).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

MAX_ACK_BYTES = 4096  # docs/protocol.md: an acknowledgement is at most 4 KiB
SIGNED_BUDGET = 3072  # the ack object's own bound: an HTTPS answer adds status and message
MAX_REASON = 200  # characters of the reason signed (the agent keeps 200 for its status)
RESULTS = {201: "stored", 409: "duplicate", 400: "rejected", 425: "retry"}
KEY_NAME, JWK_NAME = "warehouse.key", "warehouse.jwk"
MAX_KEY_FILE = 64 * 1024


class AckKeyError(Exception):
    """The warehouse's acknowledgement key cannot be used; the message names the file."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=True).encode("ascii")


@dataclass(frozen=True)
class AckKey:
    """The warehouse's Ed25519 key that signs acknowledgements, with its public JWK."""

    private: Ed25519PrivateKey

    @classmethod
    def generate(cls) -> AckKey:
        return cls(Ed25519PrivateKey.generate())

    @property
    def jwk(self) -> dict[str, str]:
        """The public key as an OKP JWK with its RFC 7638 thumbprint as ``kid`` (no ``alg``)."""
        raw = self.private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        core = {"crv": "Ed25519", "kty": "OKP", "x": _b64(raw)}
        kid = _b64(hashlib.sha256(_compact(core)).digest())
        return {"kty": "OKP", "crv": "Ed25519", "x": core["x"], "kid": kid, "use": "sig"}

    @property
    def kid(self) -> str:
        return self.jwk["kid"]

    def sign(self, statement: dict[str, Any]) -> str:
        """The compact JWS of ``statement`` (compact ASCII JSON), header as for batches."""
        header = _compact({"alg": "Ed25519", "kid": self.kid, "typ": "JOSE"})
        signing_input = f"{_b64(header)}.{_b64(_compact(statement))}"
        return f"{signing_input}.{_b64(self.private.sign(signing_input.encode('ascii')))}"

    def ack(
        self, station: str, seq: int, digest: str, result: str, reason: str = ""
    ) -> dict[str, Any]:
        """The acknowledgement object: the plain members and ``jws``, at most 4 KiB."""
        reason = reason[:MAX_REASON] if result in ("rejected", "retry") else ""
        while True:
            statement = {"v": 1, "kind": "ack", "station": station, "seq": seq,
                         "digest": digest, "result": result, "reason": reason}  # fmt: skip
            ack: dict[str, Any] = {"seq": seq, "digest": digest, "result": result}
            if result in ("rejected", "retry"):
                ack["reason"] = reason
            ack["jws"] = self.sign(statement)
            if len(encode(ack)) <= SIGNED_BUDGET or not reason:
                return ack
            reason = reason[: len(reason) // 2]  # escaped characters made it too long

    def write(self, out_dir: Path) -> tuple[Path, Path]:
        """``warehouse.key`` (PKCS#8 PEM, 0600, never overwritten) and ``warehouse.jwk``."""
        out_dir.mkdir(parents=True, exist_ok=True)
        key_path, jwk_path = out_dir / KEY_NAME, out_dir / JWK_NAME
        for path in (key_path, jwk_path):
            if path.exists():
                raise AckKeyError(f"{path}: already exists; refusing to overwrite a key")
        pem = self.private.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        jwk_path.write_text(json.dumps(self.jwk, indent=2) + "\n")
        return key_path, jwk_path

    @classmethod
    def load(cls, path: Path) -> AckKey:
        """Load ``warehouse.key``: a regular file, mode 0600 (no access for group or others),
        at most 64 KiB, an unencrypted Ed25519 PKCS#8 PEM key."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            raise AckKeyError(f"{path}: acks key_file cannot be opened ({exc.strerror})") from None
        with os.fdopen(fd, "rb") as f:
            info = os.fstat(f.fileno())
            if not stat.S_ISREG(info.st_mode):
                raise AckKeyError(f"{path}: acks key_file is not a regular file")
            if info.st_mode & 0o077:
                raise AckKeyError(
                    f"{path}: acks key_file has mode {stat.S_IMODE(info.st_mode):04o}; "
                    "expected 0600 (chmod 600 it)"
                )
            pem = f.read(MAX_KEY_FILE + 1)
        if len(pem) > MAX_KEY_FILE:
            raise AckKeyError(f"{path}: acks key_file larger than {MAX_KEY_FILE} bytes")
        try:
            key = load_pem_private_key(pem, password=None)
        except (ValueError, TypeError):
            raise AckKeyError(f"{path}: not an unencrypted PKCS#8 PEM private key") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise AckKeyError(f"{path}: expected an Ed25519 key, found {type(key).__name__}")
        return cls(key)


def http_body(status: int, message: str, ack: dict[str, Any] | None) -> bytes:
    """The HTTPS answer's JSON body: status, message and the acknowledgement's members, at most
    ``MAX_ACK_BYTES`` (the message is cut to fit: a station reads 4 KiB)."""
    while True:
        body = (json.dumps({"status": status, "message": message, **(ack or {})}) + "\n").encode()
        if len(body) <= MAX_ACK_BYTES or not message:
            return body
        message = message[: len(message) // 2]


def encode(ack: dict[str, Any]) -> bytes:
    """An acknowledgement as the bytes of an MQTT message (compact JSON)."""
    return _compact(ack)


def ack_for(
    key: AckKey | None, station: str, seq: int | None, digest: str, status: int, message: str
) -> dict[str, Any] | None:
    """The acknowledgement of an answer (HTTP ``status``; ``message`` the reason); None when
    there is nothing to acknowledge (404, or no seq could be read). Unsigned without a key."""
    result = RESULTS.get(status)
    if result is None or seq is None or not 1 <= seq < 2**63:
        return None
    if key is not None:
        return key.ack(station, seq, digest, result, message)
    ack: dict[str, Any] = {"seq": seq, "digest": digest, "result": result}
    if result in ("rejected", "retry"):
        ack["reason"] = message
    return ack
