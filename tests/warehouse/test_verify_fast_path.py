"""The verifier's fast paths say yes exactly where its field-by-field checks find nothing.

``readings_ok`` / ``v2_ok`` (one pass, direct type checks) accept the common case; only when they
say no do the full checks run and name the fault. Every field of a v3 and a v2 payload is
mutated (replaced by values of every JSON type and edge, removed, doubled) and both verdicts are
compared; the oracles for base64url, times and nesting are independent of the code (re-encoding,
``datetime.strptime``, a recursive walk of the parsed value).
"""

from __future__ import annotations

import base64
import copy
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from core.errors import VerificationError
from warehouse.verify.payload_v2 import check_v2_fields, time_ms, v2_ok
from warehouse.verify.payload_v3 import _check_readings, readings_ok
from warehouse.verify.verifier import MAX_DEPTH, b64url_strict, nesting, strict_json

V3 = {
    "v": 3,
    "kind": "readings",
    "station": "FAST-01",
    "seq": 3,
    "prev": "A" * 43,
    "sealed_at": "2026-11-28T03:00:10.002Z",
    "descriptor": 1,
    "t0": "2026-11-28T03:00:00.000Z",
    "channels": [
        {
            "device": "stack",
            "param": "SO2",
            "unit": "mg/Nm3",
            "t": [0, 1000, 1000],
            "values": [41.5, 7, "x"],
            "status": [["00", 2], ["01", 1]],
            "unsynced": [[0, 1]],
        },
        {
            "device": "stack",
            "param": "NOx",
            "unit": "mg/Nm3",
            "t": [5],
            "values": [None],
            "status": [["02", 1]],
            "unsynced": [],
        },
    ],
}
V2 = {
    "v": 2,
    "station": "FAST-01",
    "seq": 3,
    "prev": "A" * 43,
    "sealed_at": "2026-11-28T03:00:10.002Z",
    "t0": "2026-11-28T03:00:00.000Z",
    "channels": [
        {k: v for k, v in channel.items() if k != "unsynced"} for channel in V3["channels"]
    ],
}
EDGES: list[Any] = [
    None,
    True,
    False,
    0,
    -1,
    1,
    2,
    3,
    2**63 - 1,
    2**63,
    -(2**63) - 1,
    1.5,
    float("inf"),
    float("nan"),
    "",
    "x",
    "x" * 256,
    "x" * 257,
    "00",
    "03",
    [],
    {},
    [0],
    [0, 1],
    [1, 1],
    [3, 1],
    ["00", 1],
    ["00", 0],
    [["00", 1]],
    "2026-02-30T00:00:00.000Z",
    "2026-11-28T03:00:00.000Z",
    "1969-12-31T23:59:59.999Z",
    253_402_300_799_999,
    -1_764_300_000_000,
]


def _paths(value: Any, path: tuple = ()) -> Iterator[tuple]:
    yield path
    if isinstance(value, dict):
        for key in value:
            yield from _paths(value[key], (*path, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _paths(item, (*path, i))


def _at(value: Any, path: tuple) -> Any:
    for key in path:
        value = value[key]
    return value


def _variants(payload: dict[str, Any]) -> Iterator[Any]:
    """The payload, then every field replaced by each edge, removed, grown by one; each list
    also with each edge put first."""
    yield payload
    for path in _paths(payload):
        for edge in EDGES:
            out = copy.deepcopy(payload)
            if not path:
                yield edge
                continue
            _at(out, path[:-1])[path[-1]] = edge
            yield out
        if path:
            out = copy.deepcopy(payload)
            del _at(out, path[:-1])[path[-1]]
            yield out
        here = _at(payload, path)
        if isinstance(here, dict):
            out = copy.deepcopy(payload)
            _at(out, path)["extra"] = 1
            yield out
        if isinstance(here, list) and here:
            out = copy.deepcopy(payload)
            _at(out, path).append(copy.deepcopy(here[-1]))
            yield out
        if isinstance(here, list):
            for edge in EDGES:
                out = copy.deepcopy(payload)
                _at(out, path).insert(0, edge)
                yield out


def _fail(where: str, what: str) -> Exception:
    return VerificationError(f"{where}: {what}")


def _check_time(text: Any, where: str) -> None:
    if time_ms(text) is None:
        raise _fail(where, "not a time")


def _full_accepts(check: Any, payload: Any) -> bool:
    try:
        check(payload, _fail, _check_time)
    except VerificationError:
        return False
    return True


@pytest.mark.parametrize(
    ("payload", "fast", "full"),
    [(V3, readings_ok, _check_readings), (V2, v2_ok, check_v2_fields)],
    ids=["v3 readings", "v2"],
)
def test_the_fast_path_says_yes_exactly_where_the_full_checks_find_nothing(
    payload, fast, full
) -> None:
    compared = accepted = 0
    for variant in _variants(payload):
        if not isinstance(variant, dict) or variant.get("kind") != payload.get("kind"):
            continue  # refused (or a record) before either runs: check_v3 reads kind first
        compared += 1
        verdict = _full_accepts(full, variant)
        accepted += verdict
        assert fast(variant) == verdict, json.dumps(variant, default=str)[:400]
    assert compared > 500 and 20 < accepted < compared  # the corpus holds both verdicts


def test_canonical_base64url_is_told_by_its_last_character() -> None:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for stem in ("", "QUJD"):
        for length in (2, 3):
            for last in alphabet:
                text = stem + "A" * (length - 1) + last
                decoded = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
                canonical = base64.urlsafe_b64encode(decoded).rstrip(b"=").decode() == text
                if canonical:
                    assert b64url_strict(text, "x") == decoded
                else:
                    with pytest.raises(VerificationError, match="not canonical"):
                        b64url_strict(text, "x")


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-28T03:00:10.002Z",
        "2024-02-29T23:59:59.999Z",
        "1970-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
        "0001-01-01T00:00:00.000Z",
        "2026-02-29T00:00:00.000Z",
        "2026-02-30T00:00:00.000Z",
        "2026-13-01T00:00:00.000Z",
        "2026-00-01T00:00:00.000Z",
        "2026-01-00T00:00:00.000Z",
        "2026-04-31T00:00:00.000Z",
        "0000-01-01T00:00:00.000Z",
        "2026-01-01T24:00:00.000Z",
        "2026-01-01T00:60:00.000Z",
        "2026-01-01T00:00:60.000Z",
        "2026-01-01T00:00:00.000",
        "2026-01-01 00:00:00.000Z",
        "2026-01-01T00:00:00Z",
    ],
)
def test_times_read_as_strptime_reads_them(text: str) -> None:
    try:
        at = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    except ValueError:
        assert time_ms(text) is None
        return
    assert time_ms(text) == round(at.timestamp() * 1000)


def test_a_time_in_digits_of_another_script_is_not_a_time() -> None:
    assert time_ms("٢٠٢٦-11-28T03:00:10.002Z") is None  # RFC 3339: ASCII DIGIT only


@pytest.mark.parametrize(
    "text",
    [
        '{"a":"[[[[[[[[[[","b":[1]}',  # brackets inside strings
        '{"a":"\\\\","b":"\\"[[[[[[[[[["}',  # escaped backslash, then an escaped quote
        '[[[[[[[[["x"]]]]]]]]]',  # balanced, deeper than the limit
        '["[", "]", {"}": []}]',
        "[" * 30 + "]" * 30,
        '{"a":"',  # a string never closed
        "[[[]",
        "]]",
    ],
)
def test_nesting_counts_as_a_recursive_walk_does(text: str) -> None:
    def depth(value: Any) -> int:
        if isinstance(value, dict):
            return 1 + max((depth(v) for v in value.values()), default=0)
        if isinstance(value, list):
            return 1 + max((depth(v) for v in value), default=0)
        return 0

    try:
        expected = depth(json.loads(text))
    except ValueError:  # not JSON: the count must still end, and the parse refuses it
        nesting(text.encode())
        with pytest.raises(VerificationError):
            strict_json(text.encode(), "payload")
        return
    assert nesting(text.encode()) == expected


def test_deep_balanced_input_is_counted_in_linear_time() -> None:
    data = b"[" * 2_000_000 + b"]" * 2_000_000  # a pass per level would take minutes
    started = time.monotonic()
    assert nesting(data) > MAX_DEPTH
    with pytest.raises(VerificationError, match="nested deeper"):
        strict_json(data, "payload")
    assert time.monotonic() - started < 20


def _strict_by_hook(data: bytes) -> Any:
    """The oracle for duplicate keys: a hook on every object (the parse as it always was)."""

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                raise ValueError(f"duplicate key {key!r}")
            seen[key] = value
        return seen

    def no_constants(name: str) -> None:
        raise ValueError(f"{name} is not JSON")

    if nesting(data) > MAX_DEPTH:
        return f"malformed payload: nested deeper than {MAX_DEPTH} levels"
    try:
        return json.loads(
            data.decode("utf-8"), object_pairs_hook=no_duplicates, parse_constant=no_constants
        )
    except (UnicodeDecodeError, ValueError) as exc:
        return f"malformed payload: not strict UTF-8 JSON ({exc})"


def _duplicated(text: str) -> Iterator[str]:
    """``text`` (a compact v3 payload) with a key repeated at every depth and in every way."""
    deep = lambda n, obj: "[" * n + obj + "]" * n  # noqa: E731
    yield text.replace('{"v":3,', '{"v":3,"v":3,', 1)  # the payload's object
    yield text.replace('{"v":3,', '{"v":3,"v":4,', 1)  # another value
    yield text.replace('"t0"', '"seq":3,"t0"', 1)  # after others
    yield text.replace('"kind":"readings"', '"kind":"readings","\\u0076":3', 1)  # escaped key
    yield text.replace('{"v":3,', '{"v" :3,"v"\t:\n3,', 1)  # whitespace before the colon
    yield text.replace('{"v":3,', '{"v":3,"v" :3,', 1)  # one member fewer seen without it
    yield text.replace('"device":"stack",', '"device":"stack","device":"stack",', 1)  # a channel
    yield text.replace('"device":"stack",', '"unit":"x","device":"stack",', 1)
    for n in range(0, MAX_DEPTH - 2):  # an object in a channel's values, nested n deeper
        yield text.replace('"values":[', '"values":[' + deep(n, '{"a":1,"a":1}') + ",", 1)
        yield text.replace('"values":[', '"values":[' + deep(n, '{"a":{"b":1,"b":2}}') + ",", 1)
    yield text.replace('"prev":', '"x":{"y":[{"k":":a","k":1}]},"prev":', 1)  # a colon string
    yield text.replace('"station":"FAST-01"', '"station":":FAST-01","station":"x"', 1)
    yield text.replace('{"v":3,', '{"v":3,"v":3,"n":NaN,', 1)  # the duplicate comes first
    yield text.replace('{"v":3,', '{"n":NaN,"v":3,"v":3,', 1)  # NaN comes first
    yield text.replace('{"v":3,', '{"v":3,"v":3,"n":[1,,2],', 1)  # then a syntax error
    yield text.replace('{"v":3,', '{"v":3,"v":3,"n":"\\ud800",', 1)  # a lone surrogate
    yield text.replace('"device":"stack",', '"device":"stack","device":"stack",x', 1)
    yield text[:-1] + ',"v":3}'  # the last key of the outermost object


def test_a_duplicate_key_at_any_depth_is_refused_as_the_hook_refuses_it() -> None:
    text = json.dumps(V3, separators=(",", ":"))
    record = {**{k: V3[k] for k in ("v", "station", "seq", "prev", "sealed_at")}, "kind": "x"}
    record["body"] = {"a": {"b": {"c": [{"d": 1}]}}}
    variants = list(_duplicated(text))
    body = json.dumps(record, separators=(",", ":"))
    variants += [body.replace('{"d":1}', '{"d":1,"d":1}'), body.replace('{"c"', '{"c":1,"c"')]
    variants += [text, body, text.replace('"FAST-01"', '":FAST-01"'), " " + text + "\n"]
    refused = 0
    for variant in variants:
        expected = _strict_by_hook(variant.encode())
        if isinstance(expected, str):
            refused += 1
            with pytest.raises(VerificationError) as caught:
                strict_json(variant.encode(), "payload")
            assert str(caught.value) == expected, variant
        else:
            assert strict_json(variant.encode(), "payload") == expected, variant
    assert refused == len(variants) - 4  # every variant but the four genuine ones
