"""A compiled ``$filter`` / ``$orderby`` expression and its type (``warehouse.sta.compile``)."""

from __future__ import annotations

from dataclasses import dataclass

from warehouse.sta.sql import Sql


@dataclass(frozen=True)
class Typed:
    """A compiled expression and its type: bool num str time date tod null any json."""

    sql: Sql
    type: str
    # for type "any" (an Observation's result): the numeric and the text forms, and its
    # null test; for type "json": the document and the path inside it
    num: Sql | None = None
    text: Sql | None = None
    is_null: Sql | None = None
    doc: Sql | None = None
    path: tuple[str, ...] = ()
