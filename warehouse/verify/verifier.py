"""The reference warehouse's own verification of signed batches, written apart from the agent's.

It shares no code with ``agent.protocol.jws``/``agent.protocol.verify`` (an import contract in
pyproject.toml keeps
it so): a bug on one side cannot hide in the other. It follows docs/protocol.md literally:

* compact JWS, three parts of strict base64url (alphabet ``A-Z a-z 0-9 - _``, no padding, and
  the canonical encoding of the decoded bytes: no stray low bits in the last character);
* the protected header is exactly ``{"alg":ALG,"kid":"<registered kid>","typ":"JOSE"}``, ALG
  being ``Ed25519`` for a version 3 payload and ``EdDSA`` for versions 1 and 2 (RFC 9864);
* the Ed25519 signature (``cryptography``) over ``header "." payload`` as sent;
* the payload is UTF-8 JSON without duplicate keys, NaN or Infinity, nested at most
  ``MAX_DEPTH`` levels (checked before parsing: no input can exhaust the recursion limit), with
  exactly the fields of the protocol, version 1, 2 (columnar, ``warehouse.verify.payload_v2``) or 3
  (a ``kind``: readings or a record, ``warehouse.verify.payload_v3``); ``prev`` is
  base64url(SHA-256(exact bytes of the previous JWS)).

One batch has one byte string: nothing is stripped or normalised, so a variant of a genuine
batch (re-spelled base64url, padding, whitespace) is refused and can never be stored in place of
the genuine bytes, whoever posts it first.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from core.errors import VerificationError
from core.reading import text_problem
from core.record_kinds.rotation import KIND as ROTATION
from core.record_kinds.rotation import PURPOSE
from warehouse.verify.payload_v2 import TIME, check_v2, expand_v2, time_ms, value_problem
from warehouse.verify.payload_v3 import check_v3, expand_v3

MAX_HEADER_CHARS = 512  # the fixed header is about 100 characters
MAX_DEPTH = 8  # a payload nests 3 levels (object, readings list, reading object)
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKET = re.compile(rb"[\[\]{}]")
_B64URL_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
# the last character of canonical base64url, by length % 4: its spare low bits are zero
# (4 spare bits after 2 characters of a group, 2 after 3)
_CANONICAL_LAST = {2: "AQgw", 3: "AEIMQUYcgkosw048"}
_TO_BRACKETS = bytes.maketrans(b"{}", b"[]")
_NOT_STRUCTURE = bytes(c for c in range(256) if c not in b'"[]{}')
_PREV = re.compile(r"[A-Za-z0-9_-]{43}")
_PAYLOAD_KEYS = ("v", "station", "seq", "prev", "sealed_at", "readings")
_READING_KEYS = ("device", "param", "value", "unit", "time", "status")
_STATUSES = ("00", "01", "02")


def b64url_strict(text: str, what: str) -> bytes:
    """Decode unpadded base64url, refusing any text that is not the canonical encoding."""
    tail = len(text) % 4
    if not text.isascii() or text.encode("ascii").translate(None, _B64URL_ALPHABET) or tail == 1:
        raise VerificationError(f"malformed JWS: {what} is not base64url")
    if tail and text[-1] not in _CANONICAL_LAST[tail]:  # spare low bits set: another spelling
        raise VerificationError(f"malformed JWS: {what} is not canonical base64url")
    return base64.urlsafe_b64decode(text + "=" * (4 - tail if tail else 0))


def b64url_encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def digest_of(jws: str) -> str:
    """What the next batch's ``prev`` must be: base64url(SHA-256(the exact JWS bytes))."""
    return b64url_encode(hashlib.sha256(jws.encode("ascii")).digest())


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) != len(pairs):  # a key twice: name the first one repeated
        seen: set[str] = set()
        for key, _value in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen.add(key)
    return out


def _no_constants(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def nesting(data: bytes) -> int:
    """How deep arrays and objects nest (outside strings), counted without recursion."""
    return _nesting(_unescaped(data), data)


def _unescaped(data: bytes) -> bytes:
    """``data`` without escaped backslashes and quotes (the same bytes when it has no
    backslash, as a payload usually has not): each ``"`` left opens or closes a string."""
    if b"\\" not in data:
        return data
    return data.replace(b"\\\\", b"").replace(b'\\"', b"")


def _nesting(reduced: bytes, data: bytes) -> int:
    """``nesting`` of ``data``, ``reduced`` being ``_unescaped(data)``.

    Fast when no string holds a bracket: everything but quotes and brackets deleted, every
    quote then paired with the next (no string left holding anything), innermost pairs removed
    once per level (at most ``MAX_DEPTH + 1`` passes); else ``_nesting_exact``."""
    brackets = reduced.translate(_TO_BRACKETS, _NOT_STRUCTURE)
    if brackets.count(b'""') * 2 != brackets.count(b'"'):  # a string holding a bracket, or
        return _nesting_exact(data)  # one not closed: a quote not followed by its pair
    brackets = brackets.translate(None, b'"')
    depth = 0
    while brackets and depth <= MAX_DEPTH:
        inner = brackets.replace(b"[]", b"")
        if len(inner) == len(brackets):  # not balanced
            break
        brackets, depth = inner, depth + 1
    return _nesting_exact(data) if brackets else depth


def _nesting_exact(data: bytes) -> int:
    """``nesting`` by a scan of every string and bracket (any input, in one pass)."""
    level = deepest = 0
    for bracket in _BRACKET.findall(_JSON_STRING.sub(b"", data)):
        if bracket in (b"[", b"{"):
            level += 1
            deepest = max(deepest, level)
        else:
            level -= 1
    return deepest


def strict_json(data: bytes, what: str) -> Any:
    """Parse UTF-8 JSON refusing duplicate keys, NaN/Infinity and absurd nesting.

    Parsed first without a Python hook per object; the members of the objects that gives are
    then counted (the payload and its channels) against ``_members``, an upper bound of the
    members the text holds: equal, no key was repeated (a repeated key leaves one member
    fewer). Otherwise (another shape, a string starting with a colon, an error) the text is
    parsed again with ``_no_duplicates`` on every object, which says what it always said."""
    reduced = _unescaped(data)
    if _nesting(reduced, data) > MAX_DEPTH:
        raise VerificationError(f"malformed {what}: nested deeper than {MAX_DEPTH} levels")
    try:
        text = data.decode("utf-8")
        try:
            parsed = json.loads(text, parse_constant=_no_constants)
        except ValueError:
            parsed = _NOT_PARSED
        if parsed is _NOT_PARSED or _members(reduced) != _counted(parsed):
            parsed = json.loads(
                text, object_pairs_hook=_no_duplicates, parse_constant=_no_constants
            )
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError(f"malformed {what}: not strict UTF-8 JSON ({exc})") from None
    except RecursionError:  # cannot be reached past the count above; refused all the same
        raise VerificationError(f"malformed {what}: nested too deep") from None
    if b"\\" in data and _UNSTORABLE_ESCAPE.search(data):  # only an escape makes one
        where = _unstorable(parsed)
        if where is not None:
            raise VerificationError(f"malformed {what}: {where[0]}: {where[1]}")
    return parsed


# A NUL or a lone surrogate can only enter a JSON text as a \u escape (raw, the first is a
# control character JSON refuses, the second is not UTF-8); a text without one holds neither.
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])")


def _unstorable(parsed: Any) -> tuple[str, str] | None:
    """(where, what) of the first string, key or value, that no store can keep as text: one
    holding U+0000 (PostgreSQL's text and jsonb refuse it) or a lone surrogate (not UTF-8;
    RFC 7493 forbids it). None: every string is storable. Iterative (depth is bounded)."""
    stack: list[tuple[str, Any]] = [("", parsed)]
    while stack:
        path, node = stack.pop()
        if type(node) is str:
            problem = text_problem(node)
            if problem:
                return path or "(top level)", problem
        elif type(node) is dict:
            for key, value in reversed(node.items()):
                problem = text_problem(key)
                if problem:
                    return f"{path}.{key!r}".lstrip(".") + " (a key)", problem
                stack.append((f"{path}.{key}".lstrip("."), value))
        elif type(node) is list:
            stack.extend((f"{path}.{i}".lstrip("."), v) for i, v in reversed(list(enumerate(node))))
    return None


_NOT_PARSED = object()


def _members(reduced: bytes) -> int:
    """At least as many as the object members in a JSON text (``_unescaped``): each member's
    key ends with a quote that, whitespace deleted, a colon follows (so does a string opening
    with a colon: counted too, an upper bound)."""
    if b" " in reduced or b"\n" in reduced or b"\t" in reduced or b"\r" in reduced:
        reduced = reduced.translate(None, b" \t\n\r")
    return reduced.count(b'":')


def _counted(parsed: Any) -> int:
    """The members of a parsed payload's object and of its channels' objects (at most all its
    objects' members: other objects are not counted)."""
    if type(parsed) is not dict:
        return 0
    channels = parsed.get("channels")
    if type(channels) is not list or set(map(type, channels)) != {dict}:
        return len(parsed)
    return len(parsed) + sum(map(len, channels))


@dataclass(frozen=True)
class RegisteredKey:
    """A station's public key as the warehouse registered it."""

    kid: str
    key: Ed25519PublicKey

    @cached_property
    def headers(self) -> dict[str, str]:
        """The base64url text of each protected header this key's batches may carry -> its
        alg (canonical base64url spells each byte string one way: equal texts, equal bytes)."""
        return {
            b64url_encode(f'{{"alg":"{alg}","kid":"{self.kid}","typ":"JOSE"}}'.encode()): alg
            for alg in ("Ed25519", "EdDSA")
        }

    @classmethod
    def from_jwk(cls, jwk: dict[str, Any]) -> RegisteredKey:
        """From an OKP JWK; the kid is its RFC 7638 thumbprint, computed here."""
        if (
            jwk.get("kty") != "OKP"
            or jwk.get("crv") != "Ed25519"
            or not isinstance(jwk.get("x"), str)
        ):
            raise VerificationError("JWK is not an Ed25519 OKP key (kty OKP, crv Ed25519, x)")
        raw = b64url_strict(jwk["x"], "JWK x")
        if len(raw) != 32:
            raise VerificationError("JWK x is not a 32-byte Ed25519 key")
        members = f'{{"crv":"Ed25519","kty":"OKP","x":"{jwk["x"]}"}}'
        kid = b64url_encode(hashlib.sha256(members.encode("ascii")).digest())
        return cls(kid, Ed25519PublicKey.from_public_bytes(raw))


@dataclass(frozen=True)
class Batch:
    """A batch whose signature and payload verified."""

    jws: str
    payload: dict[str, Any]

    @property
    def seq(self) -> int:
        return int(self.payload["seq"])

    @property
    def prev(self) -> str | None:
        return self.payload["prev"]

    @property
    def kind(self) -> str:
        """``readings`` for a measurement batch (every v1/v2 one), else the record's kind."""
        return str(self.payload.get("kind", "readings"))

    @property
    def readings(self) -> list[dict[str, Any]]:
        """Every reading (v2/v3 channels expanded; none in a record)."""
        return readings_of(self.payload)

    @property
    def digest(self) -> str:
        return digest_of(self.jws)


def readings_of(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Every reading of a checked payload of any version, as v1 objects (none in a record)."""
    if payload["v"] == 3:
        return expand_v3(payload)
    if payload["v"] == 2:
        return expand_v2(payload)
    return list(payload["readings"])


def split(token: str | bytes) -> tuple[str, str, str]:
    """The three base64url parts of a compact JWS (not decoded)."""
    if isinstance(token, bytes):
        try:
            token = token.decode("ascii")
        except UnicodeDecodeError:
            raise VerificationError("malformed JWS: not ASCII") from None
    parts = token.split(".")  # nothing stripped: one batch, one byte string
    if len(parts) != 3:
        raise VerificationError(f"malformed JWS: expected 3 dot-separated parts, got {len(parts)}")
    return parts[0], parts[1], parts[2]


def unverified_payload(token: str | bytes) -> dict[str, Any] | None:
    """The payload a token claims, without any check (for reports of what was refused)."""
    try:
        payload = strict_json(b64url_strict(split(token)[1], "payload"), "payload")
    except VerificationError:
        return None
    return payload if isinstance(payload, dict) else None


def check(
    token: str | bytes, key: RegisteredKey, station: str | None = None, claimed: Any = None
) -> Batch:
    """Verify one compact JWS from ``station``; raises VerificationError saying why not.
    ``claimed``: ``unverified_payload(token)`` if the caller read it already (parsed once;
    None: parsed here, and a parse error raised)."""
    head, body, sig = split(token)
    if len(head) > MAX_HEADER_CHARS:
        raise VerificationError("malformed JWS: protected header too long")
    alg = key.headers.get(head)  # exactly the protocol's header for this key, as text
    if alg is None:  # anything else is refused: say why
        alg = _header_alg(head, key)
    signature = b64url_strict(sig, "signature")
    try:
        key.key.verify(signature, f"{head}.{body}".encode("ascii"))
    except InvalidSignature:
        raise VerificationError("signature does not verify: payload altered or wrong key") from None
    payload = (
        claimed if claimed is not None else strict_json(b64url_strict(body, "payload"), "payload")
    )
    _check_payload(payload)
    wanted = "Ed25519" if payload["v"] == 3 else "EdDSA"
    if alg != wanted:
        raise VerificationError(
            f"alg {alg!r} does not go with payload version {payload['v']} (signed with {wanted!r})"
        )
    if station is not None and payload["station"] != station:
        raise VerificationError(
            f"payload station {payload['station']!r} does not match the sender {station!r}"
        )
    return Batch(f"{head}.{body}.{sig}", payload)


def _header_alg(head: str, key: RegisteredKey) -> str:
    """The alg of a protected header that is not, as text, one of ``key.headers``: raises
    VerificationError saying what is wrong with it (the text of any header it would accept is
    one of them, so it always raises)."""
    try:
        header = strict_json(b64url_strict(head, "protected header"), "protected header")
    except VerificationError as exc:
        raise VerificationError(
            f"malformed JWS: protected header is not base64url JSON ({exc})"
        ) from None
    if not isinstance(header, dict):
        raise VerificationError("malformed JWS: protected header is not a JSON object")
    alg = header.get("alg")
    if alg not in ("Ed25519", "EdDSA"):
        raise VerificationError(
            f"unsupported alg {alg!r}: only Ed25519 (or EdDSA before payload v3) is accepted"
        )
    if header.get("kid") != key.kid:
        raise VerificationError(
            f"kid {header.get('kid')!r} is not the station's registered key {key.kid!r}"
        )
    expected = f'{{"alg":"{alg}","kid":"{key.kid}","typ":"JOSE"}}'
    if b64url_strict(head, "protected header") != expected.encode("ascii"):
        raise VerificationError(f"protected header is not exactly {expected}")
    return str(alg)


def _check_payload(payload: Any) -> None:
    def fail(where: str, what: str) -> VerificationError:
        return VerificationError(f"malformed payload: {where}: {what}")

    if not isinstance(payload, dict):
        raise fail("(top level)", "not a JSON object")
    version = payload.get("v") if type(payload.get("v")) is int else None
    if version == 2:
        check_v2(payload, fail, lambda text, where: _check_time(text, where, fail))
    elif version == 3:
        check_v3(payload, fail, lambda text, where: _check_time(text, where, fail))
    else:
        _check_v1_fields(payload, fail)
    _check_head(payload, fail)
    if payload["v"] == 1:
        _check_v1_readings(payload["readings"], fail)


def _check_v1_fields(payload: dict[str, Any], fail) -> None:
    for key in _PAYLOAD_KEYS:
        if key not in payload:
            raise fail(key, "missing")
    extra = sorted(set(payload) - set(_PAYLOAD_KEYS))
    if extra:
        raise fail(extra[0], "not a field of the payload")
    if payload["v"] != 1 or type(payload["v"]) is not int:
        raise fail("v", "must be 1, 2 or 3")


def _check_head(payload: dict[str, Any], fail) -> None:
    if not isinstance(payload["station"], str) or not payload["station"]:
        raise fail("station", "must be a non-empty string")
    seq, prev = payload["seq"], payload["prev"]
    if type(seq) is not int or not 1 <= seq < 2**63:
        raise fail("seq", "must be an integer >= 1 (within signed 64 bits)")
    if seq == 1 and prev is not None:
        raise fail("prev", "must be null for seq 1")
    if seq > 1 and not (isinstance(prev, str) and _PREV.fullmatch(prev)):
        raise fail("prev", f"seq {seq} needs the 43-character base64url digest of seq {seq - 1}")
    _check_time(payload["sealed_at"], "sealed_at", fail)


def _check_v1_readings(readings: Any, fail) -> None:
    if not isinstance(readings, list):
        raise fail("readings", "must be a list")
    for i, reading in enumerate(readings):
        where = f"readings.{i}"
        if not isinstance(reading, dict) or sorted(reading) != sorted(_READING_KEYS):
            raise fail(where, f"must have exactly the keys {', '.join(_READING_KEYS)}")
        for key in ("device", "param", "unit"):
            if not isinstance(reading[key], str):
                raise fail(f"{where}.{key}", "must be a string")
        problem = value_problem(reading["value"])
        if problem:
            raise fail(f"{where}.value", problem)
        _check_time(reading["time"], f"{where}.time", fail)
        if reading["status"] not in _STATUSES:
            raise fail(f"{where}.status", "must be '00', '01' or '02'")


def _check_time(text: Any, where: str, fail) -> None:
    if not (isinstance(text, str) and TIME.fullmatch(text)):
        raise fail(where, "must be RFC 3339 UTC with milliseconds (YYYY-MM-DDTHH:MM:SS.mmmZ)")
    if time_ms(text) is None:
        raise fail(where, f"{text!r} is not a real date and time")


@dataclass
class ChainCheck:
    """What checking a set of batches of one station found."""

    batches: dict[int, Batch] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_chain(tokens: Iterable[str | bytes], key: RegisteredKey) -> ChainCheck:
    """Every token verifies with the key in force at its seq (``key``, then the new key of each
    rotation record before it), seqs run 1..n without a gap or replay, each ``prev`` is the
    digest of the batch before it, and each v3 readings batch names the latest descriptor
    record before it (null: none before it)."""
    out = ChainCheck()
    in_force = [(1, key)]
    for n, token in sorted(enumerate(tokens), key=lambda item: _seq_claimed(item[1])):
        signer = [k for first, k in in_force if first <= _seq_claimed(token)][-1]
        try:
            batch = check(token, signer)
            if batch.kind == ROTATION and batch.seq not in out.batches:
                new = rotation_key(batch.payload["station"], batch, signer)
                in_force.append((batch.seq + 1, new))
        except VerificationError as exc:
            out.problems.append(f"token {n}: {exc}")
            continue
        held = out.batches.get(batch.seq)
        if held is not None and held.jws != batch.jws:
            out.problems.append(f"replay: seq {batch.seq} twice with different content")
        out.batches.setdefault(batch.seq, batch)
    latest = None
    for expected, seq in enumerate(sorted(out.batches), start=1):
        if seq != expected:
            out.problems.append(f"gap: seq {expected} missing")
            break
        batch = out.batches[seq]
        if seq > 1 and batch.prev != out.batches[seq - 1].digest:
            out.problems.append(
                f"chain broken: prev of seq {seq} is not the digest of seq {seq - 1}"
            )
        if batch.kind == "descriptor":
            latest = seq
        elif batch.kind == "readings" and batch.payload.get("descriptor", latest) != latest:
            out.problems.append(  # v3 readings (v1/v2 name no descriptor)
                f"seq {seq} names descriptor {batch.payload['descriptor']}, but the latest "
                f"descriptor record before it is {latest}"
            )
    return out


def _seq_claimed(token: str | bytes) -> int:
    """The seq a token claims before any check (0 when none can be read): the walking order."""
    payload = unverified_payload(token)
    seq = payload.get("seq") if payload else None
    return seq if type(seq) is int else 0


def rotation_key(station: str, batch: Batch, signed_by: RegisteredKey) -> RegisteredKey:
    """The new key a verified rotation record signed by ``signed_by`` hands its chain to; raises
    VerificationError unless ``old_kid`` is ``signed_by``, ``new_key.kid`` its thumbprint and the
    proof verifies with it over exactly the documented claims (docs/protocol.md)."""
    seq, body = batch.seq, batch.payload["body"]
    where = f"rotation at seq {seq}"
    if body["old_kid"] != signed_by.kid:
        raise VerificationError(
            f"{where}: old_kid {body['old_kid']!r} is not the key that signed it"
        )
    new = RegisteredKey.from_jwk(body["new_key"])
    if body["new_key"]["kid"] != new.kid:
        raise VerificationError(f"{where}: new_key.kid is not the key's thumbprint {new.kid}")
    _check_proof(body["proof"], new, _proof_bytes(station, seq, signed_by.kid, new.kid), where)
    return new


def _proof_bytes(station: str, seq: int, old_kid: str, new_kid: str) -> bytes:
    return (
        f'{{"purpose":"{PURPOSE}","station":{json.dumps(station)},"seq":{seq},'
        f'"old_kid":"{old_kid}","new_kid":"{new_kid}"}}'
    ).encode()


def _check_proof(proof: Any, key: RegisteredKey, expected: bytes, where: str) -> None:
    try:
        head, body, sig = split(proof)
        header = b64url_strict(head, "proof header")
        payload = b64url_strict(body, "proof payload")
        signature = b64url_strict(sig, "proof signature")
    except VerificationError as exc:
        raise VerificationError(f"{where}: proof: {exc}") from None
    if header != f'{{"alg":"Ed25519","kid":"{key.kid}","typ":"JOSE"}}'.encode():
        raise VerificationError(f"{where}: proof header is not the new key's Ed25519 header")
    try:
        key.key.verify(signature, f"{head}.{body}".encode("ascii"))
    except InvalidSignature:
        raise VerificationError(f"{where}: proof does not verify with the new key") from None
    if payload != expected:
        raise VerificationError(f"{where}: proof is not over this station, seq and pair of keys")
