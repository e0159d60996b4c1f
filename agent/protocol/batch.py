"""The batch: its payload (built at sealing, checked at the warehouse); ``agent.protocol.signer``
signs it.

Payload version 1 (UTF-8 JSON, see docs/protocol.md and docs/batch.schema.json; version 2, the
columnar form, is ``agent.protocol.payload_v2``; version 3, what sealing writes by default,
``agent.protocol.payload_v3``)::

    {"v":1,"station":str,"seq":int,"prev":str|null,"sealed_at":RFC3339 UTC,
     "readings":[{"device":str,"param":str,"value":integer|number|string|null,"unit":str,
                  "time":RFC3339 UTC,"status":"00"|"01"|"02"}, ...]}

``value``: a JSON integer for integer registers and bits (exact, no ``.0``), a number with a
fraction or exponent for measured values, a string for text registers (at most
``MAX_TEXT_VALUE`` characters), ``null`` when there is no value. A value that cannot be sent
(NaN, infinity, a longer text, a text holding U+0000 or a lone surrogate) goes as ``null``
with status "02".
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from typing import Annotated, Literal

from pydantic import ConfigDict, Field, StrictInt, ValidationError

from agent.protocol.payload_v2 import PAYLOAD_V2, PayloadV2Model
from agent.protocol.payload_v3 import PAYLOAD_V3, PayloadV3Model, RecordPayloadModel
from agent.support.bounded import check_json_depth
from core.errors import VerificationError
from core.model import Model, StrictStorableText
from core.reading import FAULT, StatusCode, rfc3339_ms, text_problem

PAYLOAD_VERSION = 1
MAX_TEXT_VALUE = 256  # characters of a text value (a Modbus string is at most 250)
_RFC3339_UTC = r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$"  # milliseconds: as sealed


def build_payload(
    station: str,
    seq: int,
    prev: str | None,
    sealed_at_ms: int,
    rows: Iterable[tuple[str, str, str, int, float | int | str | None, str]],
) -> bytes:
    """Serialize a batch payload from (device, param, unit, time_ms, value, status) rows.

    The bytes are exactly ``json.dumps(payload, separators=(",", ":"), ensure_ascii=False)``;
    the readings are assembled from per-channel JSON fragments because building and encoding a
    dict per reading dominated sealing (tests/protocol/test_batch_payload.py keeps the two
    identical).
    """
    head = {
        "v": PAYLOAD_VERSION,
        "station": station,
        "seq": seq,
        "prev": prev,
        "sealed_at": rfc3339_ms(sealed_at_ms),
    }
    channels: dict[tuple[str, str, str], tuple[str, str]] = {}
    times: dict[int, str] = {}
    statuses: dict[str, str] = {}
    parts: list[str] = []
    add = parts.append
    for device, param, unit, time_ms, value, status in rows:
        channel = channels.get((device, param, unit))
        if channel is None:
            channel = channels[(device, param, unit)] = (
                f'{{"device":{_json(device)},"param":{_json(param)},"value":',
                f',"unit":{_json(unit)},"time":',
            )
        if value is None:
            number = "null"
        elif value.__class__ is float and value - value == 0.0:  # finite float: the usual case
            number = _float_repr(value)
        elif isinstance(value, int):  # exact: -123456, not -123456.0 (a bool is 0 or 1)
            number = _int_repr(int(value))
        elif (
            isinstance(value, str) and len(value) <= MAX_TEXT_VALUE and not text_problem(value)
        ) or (isinstance(value, float) and math.isfinite(value)):
            number = _json(value)
        else:
            number, status = "null", FAULT
        text = times.get(time_ms)
        if text is None:
            text = times[time_ms] = _json(rfc3339_ms(time_ms))
        tail = statuses.get(status)
        if tail is None:
            tail = statuses[status] = f',"status":{_json(status)}}}'
        add(channel[0])
        add(number)
        add(channel[1])
        add(text)
        add(tail)
        add(",")
    if parts:
        parts.pop()  # the last reading's separator
    return f'{_json(head)[:-1]},"readings":[{"".join(parts)}]}}'.encode()


_float_repr = float.__repr__  # what json.dumps writes for a float
_int_repr = int.__repr__


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


class ReadingModel(Model):
    """One reading as it appears in a batch payload."""

    model_config = ConfigDict(extra="forbid")

    device: StrictStorableText
    param: StrictStorableText
    value: (
        StrictInt
        | Annotated[float, Field(allow_inf_nan=False, strict=True)]
        | Annotated[StrictStorableText, Field(max_length=MAX_TEXT_VALUE)]
        | None
    )
    unit: StrictStorableText
    time: Annotated[str, Field(pattern=_RFC3339_UTC)]
    status: StatusCode


class PayloadModel(Model):
    """A batch payload; the JSON Schema in docs/batch.schema.json is generated from this."""

    model_config = ConfigDict(extra="forbid")

    v: Literal[1]
    station: Annotated[str, Field(min_length=1, strict=True)]
    seq: Annotated[StrictInt, Field(ge=1)]
    prev: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{43}$")] | None
    sealed_at: Annotated[str, Field(pattern=_RFC3339_UTC)]
    readings: list[ReadingModel]


AnyPayload = PayloadModel | PayloadV2Model | PayloadV3Model | RecordPayloadModel


def alg_for(version: int) -> str:
    """The one ``alg`` a payload of this version is signed with (docs/protocol.md)."""
    return "Ed25519" if version >= PAYLOAD_V3 else "EdDSA"


def parse_payload(payload: bytes) -> AnyPayload:
    """Decode and validate a payload (v1, v2, or v3 of any registered kind); raises
    VerificationError saying what is wrong."""
    try:
        text = payload.decode("utf-8")
        check_json_depth(text)
        data = json.loads(
            text,
            parse_constant=_reject_constant,
            object_pairs_hook=_refuse_duplicate_keys,
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise VerificationError(f"malformed payload: not UTF-8 JSON ({exc})") from None
    try:
        model: AnyPayload
        version = data.get("v") if isinstance(data, dict) else None
        if type(version) is not int:
            version = None
        if version == PAYLOAD_V2:
            model = PayloadV2Model.model_validate(data)
        elif version == PAYLOAD_V3 and data.get("kind") == "readings":
            model = PayloadV3Model.model_validate(data)
        elif version == PAYLOAD_V3:
            model = RecordPayloadModel.model_validate(data)
        else:
            model = PayloadModel.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise VerificationError(f"malformed payload: {where}: {first['msg']}") from None
    if model.seq == 1 and model.prev is not None:
        raise VerificationError("malformed payload: seq 1 must have prev null")
    if model.seq > 1 and model.prev is None:
        raise VerificationError(f"malformed payload: seq {model.seq} has prev null")
    return model


def _refuse_duplicate_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not allowed in a payload")
