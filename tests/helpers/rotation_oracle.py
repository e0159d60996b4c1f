"""An independent walker for chains that rotate keys: hashlib for the links, joserfc for every
signature, plain json for the records. It shares no code with the agent or the warehouse."""

from __future__ import annotations

import base64
import hashlib
import json
import sqlite3
import zlib
from pathlib import Path

from joserfc import jws as jose_jws
from joserfc.errors import JoseError
from joserfc.jwk import OKPKey


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def joserfc_verifies(token: str, jwk: dict) -> bool:
    """joserfc, given only the key's public members, verifies ``token`` as Ed25519."""
    public = {k: jwk[k] for k in ("kty", "crv", "x")}
    try:
        jose_jws.deserialize_compact(token, OKPKey.import_key(public), algorithms=["Ed25519"])
    except (JoseError, ValueError):
        return False
    return True


def walk(tokens: dict[int, str], first_jwk: dict, station: str) -> dict[int, str]:
    """Check seq 1..n: each ``prev`` is SHA-256 of the exact bytes before it, each batch verifies
    (joserfc) with the key in force at its seq and names it; a rotation record's proof verifies
    with its new key over exactly the documented claims, and hands the next seqs to that key.
    Returns the kid that signed each seq."""
    assert sorted(tokens) == list(range(1, len(tokens) + 1)), "a gap in the chain"
    jwk, kids = first_jwk, {}
    for seq in sorted(tokens):
        token = tokens[seq]
        header = json.loads(_unb64(token.split(".")[0]))
        payload = json.loads(_unb64(token.split(".")[1]))
        assert payload["seq"] == seq
        prev = _b64(hashlib.sha256(tokens[seq - 1].encode()).digest()) if seq > 1 else None
        assert payload["prev"] == prev, f"seq {seq} does not follow seq {seq - 1}"
        assert header == {"alg": "Ed25519", "kid": jwk["kid"], "typ": "JOSE"}, (seq, header)
        assert joserfc_verifies(token, jwk), f"seq {seq} does not verify with {jwk['kid']}"
        kids[seq] = jwk["kid"]
        if payload["kind"] == "rotation":
            body = payload["body"]
            new = body["new_key"]
            members = json.dumps({k: new[k] for k in ("crv", "kty", "x")}, separators=(",", ":"))
            assert new["kid"] == _b64(hashlib.sha256(members.encode()).digest())
            assert body["old_kid"] == jwk["kid"]
            assert joserfc_verifies(body["proof"], new), f"seq {seq}: proof"
            claims = {
                "purpose": "key-rotation",
                "station": station,
                "seq": seq,
                "old_kid": jwk["kid"],
                "new_kid": new["kid"],
            }
            expected = json.dumps(claims, separators=(",", ":")).encode()
            assert _unb64(body["proof"].split(".")[1]) == expected
            jwk = new
    return kids


def warehouse_tokens(db: Path, station: str) -> dict[int, str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT seq, jws FROM batches WHERE station = ?", (station,))
        return dict(rows.fetchall())
    finally:
        conn.close()


def buffer_tokens(db: Path) -> dict[int, str]:
    """The agent's sealed batches, rebuilt from its buffer with plain SQL and zlib."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        rows = conn.execute("SELECT seq, header, payload, signature FROM batches").fetchall()
    finally:
        conn.close()
    return {seq: f"{h}.{_b64(zlib.decompress(p))}.{s}" for seq, h, p, s in rows}


def rotation_seqs(tokens: dict[int, str]) -> list[int]:
    return [
        seq
        for seq, token in sorted(tokens.items())
        if json.loads(_unb64(token.split(".")[1])).get("kind") == "rotation"
    ]
