"""Record kinds: what the chain carries beside measurement batches (payload v3).

A v3 payload has a ``kind``. ``"readings"`` is a measurement batch (``agent.protocol.payload_v3``);
every
other kind is a *record* whose ``body`` is one JSON object checked by the pydantic model its kind
registered here. The model is the data contract of that kind, shared by the agent (checked when
a record is built) and the reference warehouse (checked when it arrives); the envelope around it
(``v``, ``kind``, ``station``, ``seq``, ``prev``, ``sealed_at``, ``body``) is checked by each side
with its own code.

Adding a kind is one module and one line: write ``core/record_kinds/<name>.py`` defining the
body model (``model_config = ConfigDict(extra="forbid")``, strict types) and calling
``register_kind("<name>", Model)`` at import, then name it in ``core.record_kinds.BUILTIN``.
Names are lower case (``^[a-z][a-z0-9_]{0,31}$``); ``readings`` is not a record kind.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ValidationError

READINGS = "readings"
_NAME = re.compile(r"[a-z][a-z0-9_]{0,31}")
_KINDS: dict[str, type[BaseModel]] = {}


class RecordError(ValueError):
    """A record kind or body that is not acceptable; the message says which field and why."""


def register_kind(name: str, model: type[BaseModel]) -> None:
    """Make ``name`` a record kind whose body ``model`` checks. A name is registered once."""
    if not _NAME.fullmatch(name) or name == READINGS:
        raise RecordError(f"record kind {name!r}: must match {_NAME.pattern} and not be 'readings'")
    held = _KINDS.get(name)
    if held is not None and held is not model:
        raise RecordError(f"record kind {name!r} is already registered ({held.__name__})")
    _KINDS[name] = model


def unregister_kind(name: str) -> None:
    """Forget a kind (for tests that register their own)."""
    _KINDS.pop(name, None)


def kinds() -> dict[str, type[BaseModel]]:
    """Every registered record kind and its body model."""
    _load_builtin()
    return dict(_KINDS)


def check_body(kind: str, body: Any) -> dict[str, Any]:
    """The body as its kind's model dumps it; raises RecordError naming the field at fault."""
    model = kinds().get(kind)
    if model is None:
        known = ", ".join(sorted(_KINDS)) or "none registered"
        raise RecordError(f"unknown record kind {kind!r} (known: {known})")
    if not isinstance(body, dict):
        raise RecordError(f"record {kind}: body must be a JSON object")
    try:
        checked = model.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise RecordError(f"record {kind}: body.{where}: {first['msg']}") from None
    return checked.model_dump(mode="json")


def _load_builtin() -> None:
    from core.record_kinds import load_all  # each kind registers itself at import

    load_all()
