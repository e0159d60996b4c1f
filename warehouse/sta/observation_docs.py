"""An Observation (a reading's row) as SensorThings JSON, two ways that give the same bytes.

:func:`observation_props` builds the properties as a dict (the reference: what ``$select``,
``dataArray`` and a single Observation's property read). :class:`ObservationText` writes the
whole entity's JSON text straight from the row, for the answers that carry thousands of them
(a station's hour across 50 Datastreams: 3,000), without a dict per entity and per member,
and without the encoder walking them again. ``tests/warehouse/sta/test_sta_json_text.py``
holds the two to the same bytes over a corpus of queries on both backends.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from warehouse.sta.backend import Row
from warehouse.sta.catalogue import STATUSES
from warehouse.sta.entities import SETS
from warehouse.sta.jsontext import dumps, plain, string
from warehouse.sta.links import PLAIN_ID, entity_url, expansion_items
from warehouse.sta.sql import format_time

OBSERVATIONS = SETS["Observations"]
PROPERTIES = ("phenomenonTime", "resultTime", "result", "resultQuality", "validTime",
              "parameters")

# one document per status, shared by every Observation (never changed once built)
QUALITY = {code: {"status": code, "meaning": meaning} for code, meaning in STATUSES.items()}
_QUALITY_TEXT = {code: plain(doc) for code, doc in QUALITY.items()}


def format_time_value(value: Any) -> str | None:
    """A stored time as RFC 3339 UTC with milliseconds (SQLite text as is; a datetime
    formatted)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        return format_time(value)
    return str(value)


def observation_result(row: Row) -> Any:
    kind = row["value_kind"]
    if kind == "int":
        return int(row["value_int"])
    if kind == "float":
        return float(row["value_float"])
    if kind == "text":
        return row["value_text"]
    return None


def observation_props(row: Row, base: str) -> dict[str, Any]:
    """The properties of the Observation of ``row``, in the order they are written."""
    time = format_time_value(row["time"])
    return {
        "phenomenonTime": time,
        "resultTime": time,
        "result": observation_result(row),
        "resultQuality": QUALITY[row["status"]],
        "validTime": None,
        "parameters": {
            "batchSeq": row["batch_seq"],
            "batchDigest": row.get("digest"),
            "unsynced": bool(row["unsynced"]),
            "valueKind": row["value_kind"],
            "unit": row["unit"],
            "maintenance": row.get("maintenance"),
        },
    }


def _leaf(value: Any) -> str:
    """A scalar as the encoder writes it (strings and ints here, the rest by the encoder)."""
    kind = type(value)
    if kind is str:
        return string(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    return plain(value)


def _other_result_text(row: Row) -> str:
    """``observation_result(row)`` encoded, for a kind other than ``float`` (a float is
    written inline by :meth:`ObservationText.encode`, 3,000 a request)."""
    kind = row["value_kind"]
    if kind == "int":
        return int.__repr__(int(row["value_int"]))
    if kind == "text":
        return _leaf(row["value_text"])
    if kind == "float":
        return plain(float(row["value_float"]))
    return "null"


@functools.lru_cache(maxsize=128)
def _writer(pieces: tuple[str | int, ...]) -> Callable[..., str]:
    """A function of 11 JSON texts writing ``pieces`` (a str: as it is; an int: that argument)
    as one f-string (a ``str.format`` of the same parses its template on every call: 5 x the
    time, at 3,000 calls a request). The generated source holds only names, never a piece;
    made once per ``$select`` plan (a small page must not pay for the compiling)."""
    names: dict[str, Any] = {}
    body = []
    for piece in pieces:
        if isinstance(piece, int):
            body.append(f"{{a{piece}}}")
        else:
            names[f"p{len(names)}"] = piece
            body.append(f"{{p{len(names) - 1}}}")
    source = "lambda " + ", ".join(f"a{i}" for i in range(11)) + ': f"' + "".join(body) + '"'
    writer: Callable[..., str] = eval(source, names)  # noqa: S307
    return writer


class ObservationText:
    """Observation entities as JSON text for one request's base URL and ``$select`` plan
    (``(selected names or None, navigation links)``, as the serializer plans a document)."""

    def __init__(self, base: str, plan: tuple[set[str] | None, list[str]]):
        select, links = plan
        # the writer's arguments, each already JSON: 0 @iot.id, 1 the selfLink without its
        # closing quote, 2 the time, 3 result, 4 resultQuality, 5-10 the parameters' members
        value: dict[str, list[str | int]] = {
            "phenomenonTime": [2], "resultTime": [2], "result": [3], "resultQuality": [4],
            "validTime": ["null"],
            "parameters": ['{"batchSeq":', 5, ',"batchDigest":', 6, ',"unsynced":', 7,
                           ',"valueKind":', 8, ',"unit":', 9, ',"maintenance":', 10, "}"]}
        pieces: list[str | int] = ["{"]
        if select is None or "id" in select or "@iot.id" in select:
            pieces += ['"@iot.id":', 0, ","]
        pieces += ['"@iot.selfLink":', 1, '"']
        for name in PROPERTIES:
            if select is None or name in select:
                pieces += [f",{string(name)}:", *value[name]]
        for name in links:
            pieces += [f",{string(name + '@iot.navigationLink')}:", 1, string("/" + name)[1:]]
        self._write = _writer(tuple(pieces))
        self._base = base
        self._prefix = string(f"{base}/{OBSERVATIONS.name}('")[:-1]

    def encode(self, rows: list[Row], expansions: Sequence[Mapping[str, Any]]) -> list[str]:
        """The JSON text of each row's entity (``expansions``: each row's expanded members)."""
        write, prefix, quality, leaf, enc = (self._write, self._prefix, _QUALITY_TEXT, _leaf,
                                           string)
        plain_station: dict[Any, bool] = {}
        out = []
        # 3,000 a request: the common types inline, anything else through _leaf / the encoder
        for row, expanded in zip(rows, expansions, strict=True):
            station, seq, ord_ = row["station"], row["batch_seq"], row["ord"]
            id_ = f"{station}:{seq}:{ord_}"
            simple = plain_station.get(station)
            if simple is None:
                simple = plain_station[station] = (type(station) is str
                                                   and PLAIN_ID.fullmatch(station) is not None)
            if simple and type(seq) is int and type(ord_) is int:
                id_text, url_open = '"' + id_ + '"', prefix + id_ + "')"
            else:
                id_text = enc(id_)
                url_open = enc(entity_url(self._base, OBSERVATIONS, id_))[:-1]
            time, kind, digest, unit = row["time"], row["value_kind"], row.get("digest"), \
                row["unit"]
            if kind == "float":  # as the C encoder writes a float: repr, but NaN and Infinity
                result = repr(float(row["value_float"]))
                if result[-1] in "fn":  # nan, inf, -inf
                    result = _other_result_text(row)
            else:
                result = _other_result_text(row)
            maintenance = row.get("maintenance")
            text = write(
                id_text,
                url_open,
                enc(time) if type(time) is str else leaf(format_time_value(time)),
                result,
                quality[row["status"]],
                str(seq) if type(seq) is int else leaf(seq),
                enc(digest) if type(digest) is str else leaf(digest),
                "true" if row["unsynced"] else "false",
                enc(kind) if type(kind) is str else leaf(kind),
                enc(unit) if type(unit) is str else leaf(unit),
                "null" if maintenance is None else plain(maintenance),
            )
            if expanded:
                url = entity_url(self._base, OBSERVATIONS, id_)
                text += "".join([f",{enc(k)}:{dumps(v)}"
                                 for k, v in expansion_items(url, expanded)])
            out.append(text + "}")
        return out
