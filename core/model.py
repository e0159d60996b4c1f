"""``Model``, the base of every pydantic model of station-agent: its validator is built at first
use, not at import.

The running agent imports ~40 models and validates with two of them directly: the configuration
(once, at start) and the station descriptor. The others are checked inside those (a nested
model's own validator is never used) or only by other commands (``verify``, the warehouse).
Building every validator at import cost ~1.7 MiB of the agent's idle RSS (bench/RESULTS.md,
issue 17). A first use builds it once; pydantic makes that build thread-safe from 2.14 (a
concurrent first use could otherwise meet a half-built model), hence the lower bound of the
dependency.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, StrictStr

from core.reading import text_problem


def _storable(text: str) -> str:
    problem = text_problem(text)
    if problem:
        raise ValueError(problem)
    return text


def _known_timezone(name: str) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only when a model is validated

    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name)") from None
    return name


# An IANA time zone name this machine knows (a station's, a datalogger's local time).
TimeZoneName = Annotated[str, AfterValidator(_known_timezone)]

# A name that travels in every batch (a channel's param, its unit): text a store can keep (no
# U+0000; TOML cannot spell a lone surrogate). docs/protocol.md, "Text holds no U+0000".
StorableText = Annotated[str, AfterValidator(_storable)]
StrictStorableText = Annotated[StrictStr, AfterValidator(_storable)]  # as read from a payload


class Model(BaseModel):
    """A pydantic model whose validator and serializer are built when first used."""

    model_config = ConfigDict(defer_build=True)
