"""The SensorThings entity sets, each a SQL source over the warehouse store (schema 1).

Built from signed data only: every entity but Observation comes from the stations' descriptor
records (``records`` kind ``descriptor``, whose signed bytes are in ``batches.jws``); an
Observation is a row of ``readings``. Ids are stable strings:

==================  ==============================  ===================================
entity set          ``@iot.id``                     one per
==================  ==============================  ===================================
Things              station id                      station with a descriptor
Locations           ``station@seq``                 descriptor whose location changed
HistoricalLocations ``station@seq`` (same)          the same change, at its sealed_at
Sensors             ``station:device``              device (latest descriptor naming it)
ObservedProperties  parameter code                  catalogue entry, or param not in it
Datastreams         ``station:device:param``        channel (latest descriptor naming it)
Observations        ``station:batch_seq:ord``       reading
FeaturesOfInterest  station id                      station (its monitored point)
==================  ==============================  ===================================

Station ids match ``[A-Za-z0-9_.-]+`` (the agent's config), so the first ``:`` or ``@`` ends it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from warehouse.sta.catalogue import CATALOGUE
from warehouse.sta.compile import Compiler
from warehouse.sta.errors import BadRequest, NotImplementedOption
from warehouse.sta.filter_parser import Path
from warehouse.sta.sql import Dialect, Sql, join, param, wrap
from warehouse.sta.typed import Typed


@dataclass(frozen=True)
class Prop:
    """A property: SQL over the source's columns (``{a}`` = the alias), its type."""

    sql: str
    type: str
    nullable: bool = True
    any_num: str = ""  # type "any": numeric, text forms and null test
    any_text: str = ""
    any_null: str = ""


@dataclass(frozen=True)
class Nav:
    """A navigation property: the target set, to-many or not, how keys pair up."""

    target: str
    many: bool
    pairs: tuple[tuple[str, str], ...]  # (column of this set, column of the target)
    extra: str = ""  # a further condition on the target ({i} = its alias)


@dataclass
class EntitySet:
    name: str
    singular: str
    source: Callable[[Dialect, str], Sql]  # (dialect, base_url) -> FROM-able SQL
    props: dict[str, Prop]
    key: tuple[str, ...]  # unique, not null: the tiebreaker of every order
    navs: dict[str, Nav]
    columns: tuple[str, ...]  # what a page selects (raw columns for the serializer)
    id_conditions: Callable[[str], list[tuple[str, object]]] | None = None
    default_order: tuple[tuple[str, bool], ...] = ()
    table: bool = field(default=False)

    def resolve(self, compiler: Compiler, node: Path, parts: list[str]) -> Typed:
        """A property path (``name``, ``resultQuality/status``, ``Datastream/Thing/name``)."""
        for n in range(len(parts), 0, -1):
            key = "/".join(parts[:n])
            if key in self.props and n == len(parts):
                return _typed(self.props[key], compiler.alias)
        head = parts[0]
        nav = self.navs.get(head)
        if nav is None:
            known = ", ".join(sorted(self.props))
            raise BadRequest(
                f"{self.singular} has no property {'/'.join(parts)!r} (known: {known})",
                option=compiler.option,
                position=node.pos,
            )
        if nav.many:
            raise NotImplementedOption(
                f"a path through the to-many {head!r} of a {self.singular} is not supported in "
                f"{compiler.option}",
                option=compiler.option,
                position=node.pos,
            )
        if len(parts) == 1:
            raise BadRequest(
                f"{head!r} is an entity, not a value: name one of its properties",
                option=compiler.option,
                position=node.pos,
            )
        if compiler.depth >= 4:
            raise BadRequest("property path too deep", option=compiler.option, position=node.pos)
        target = SETS[nav.target]
        inner_alias = f"n{compiler.depth + 1}"
        inner = Compiler(
            target,
            inner_alias,
            compiler.dialect,
            option=compiler.option,
            depth=compiler.depth + 1,
            now=compiler.now,
            base_url=compiler.base_url,
        )
        typed = target.resolve(inner, node, parts[1:])
        cond = nav_condition(nav, compiler.alias, inner_alias)
        src = target.from_clause(compiler.dialect, compiler.base_url, inner_alias)

        def sub(expr: Sql) -> Sql:
            return wrap("(SELECT {} FROM {} WHERE {} LIMIT 1)", expr, src, cond)

        if typed.type == "any":
            assert typed.num is not None and typed.text is not None and typed.is_null is not None
            return Typed(
                sub(typed.sql),
                "any",
                num=sub(typed.num),
                text=sub(typed.text),
                is_null=wrap(
                    "(NOT EXISTS (SELECT 1 FROM {} WHERE {} AND {}))",
                    src,
                    cond,
                    wrap("(NOT {})", typed.is_null),
                ),
            )
        return Typed(sub(typed.sql), typed.type)

    def from_clause(self, dialect: Dialect, base_url: str, alias: str) -> Sql:
        src = self.source(dialect, base_url)
        if self.table:
            return src + f" {alias}"
        return wrap("({}) " + alias, src)


def _typed(prop: Prop, alias: str) -> Typed:
    sql = Sql(prop.sql.format(a=alias))
    if prop.type == "any":
        return Typed(
            sql,
            "any",
            num=Sql(prop.any_num.format(a=alias)),
            text=Sql(prop.any_text.format(a=alias)),
            is_null=Sql(prop.any_null.format(a=alias)),
        )
    return Typed(sql, prop.type)


def nav_condition(nav: Nav, outer: str, inner: str) -> Sql:
    """The join of a navigation property: target alias ``inner`` to this set's ``outer``."""
    parts = [f"{inner}.{b} = {outer}.{a}" for a, b in nav.pairs]
    if nav.extra:
        parts.append(nav.extra.format(i=inner))
    return Sql("(" + " AND ".join(parts) + ")")


# --- dialect pieces -------------------------------------------------------------------------
def _jt(d: Dialect, expr: str, path: str) -> str:
    """A JSON member as SQL text/number (JSON null: SQL NULL)."""
    keys = path.split(".")
    if d.name == "sqlite":
        return f"json_extract({expr}, '$.{path}')"
    return f"({expr} #>> '{{{','.join(keys)}}}')"


def _jo(d: Dialect, expr: str, path: str) -> str:
    """A JSON member kept as JSON (an object; JSON null: SQL NULL)."""
    keys = path.split(".")
    if d.name == "sqlite":
        return f"json_extract({expr}, '$.{path}')"
    return f"NULLIF({expr} #> '{{{','.join(keys)}}}', 'null'::jsonb)"


def _each(d: Dialect, member: str) -> str:
    if d.name == "sqlite":
        return f"records r, json_each(r.body, '$.{member}') j"
    return f"records r CROSS JOIN LATERAL jsonb_array_elements(r.body -> '{member}') AS j(value)"


def _things(d: Dialect, base_url: str) -> Sql:
    return Sql(f"""SELECT r.station AS id, r.seq AS dseq, r.sealed_at AS dsealed, r.body AS body,
  COALESCE(NULLIF({_jt(d, "r.body", "station.name")}, ''), r.station) AS name,
  {_jt(d, "r.body", "station.type")} AS type, {_jt(d, "r.body", "station.operator")} AS operator,
  {_jo(d, "r.body", "station.location")} AS loc
FROM records r WHERE r.kind = 'descriptor' AND r.seq = (SELECT max(r2.seq) FROM records r2
  WHERE r2.station = r.station AND r2.kind = 'descriptor')""")


def _locations(d: Dialect, base_url: str) -> Sql:
    loc = _jo(d, "body", "station.location")
    return Sql(f"""SELECT x.station || '@' || x.seq AS id, x.station AS station, x.seq AS seq,
  x.sealed_at AS time, x.loc AS loc, x.name AS name,
  CASE WHEN ROW_NUMBER() OVER (PARTITION BY x.station ORDER BY x.seq DESC) = 1 THEN 1 ELSE 0 END
    AS current
FROM (SELECT station, seq, sealed_at, {loc} AS loc,
        COALESCE(NULLIF({_jt(d, "body", "station.name")}, ''), station) AS name,
        LAG({loc}) OVER (PARTITION BY station ORDER BY seq) AS prev_loc
      FROM records WHERE kind = 'descriptor') x
WHERE x.loc IS NOT NULL AND (x.prev_loc IS NULL OR x.prev_loc <> x.loc)""")


def _sensors(d: Dialect, base_url: str) -> Sql:
    v = "j.value"
    cols = ", ".join(
        f"{_jt(d, v, k)} AS {c}"
        for k, c in (
            ("make", "make"),
            ("model", "model"),
            ("serial_number", "serial"),
            ("principle", "principle"),
            ("range", "range_"),
            ("driver", "driver"),
        )
    )
    return Sql(f"""SELECT s.station || ':' || s.device AS id, s.* FROM (
  SELECT r.station AS station, r.seq AS dseq, {_jt(d, v, "name")} AS device, {cols},
    ROW_NUMBER() OVER (PARTITION BY r.station, {_jt(d, v, "name")} ORDER BY r.seq DESC) AS n
  FROM {_each(d, "devices")} WHERE r.kind = 'descriptor') s WHERE s.n = 1""")


def _datastreams(d: Dialect, base_url: str) -> Sql:
    v = "j.value"
    return Sql(f"""SELECT c.station || ':' || c.device || ':' || c.param AS id,
  c.station || ':' || c.device AS sensor, c.* FROM (
  SELECT r.station AS station, r.seq AS dseq, {_jt(d, v, "device")} AS device,
    {_jt(d, v, "param")} AS param, {_jt(d, v, "unit")} AS unit, {_jo(d, v, "limits")} AS limits,
    ROW_NUMBER() OVER (PARTITION BY r.station, {_jt(d, v, "device")}, {_jt(d, v, "param")}
                       ORDER BY r.seq DESC) AS n
  FROM {_each(d, "channels")} WHERE r.kind = 'descriptor') c WHERE c.n = 1""")


def _observed_properties(d: Dialect, base_url: str) -> Sql:
    rows = [
        Sql(
            "SELECT CAST(? AS TEXT) AS code, CAST(? AS TEXT) AS name, CAST(? AS TEXT) AS media",
            (p.code, p.name, ",".join(p.media)),
        )
        for p in CATALOGUE.parameters
    ]
    cat = join(rows, " UNION ALL ")
    used = Sql(
        f"SELECT DISTINCT {_jt(d, 'j.value', 'param')} AS code FROM {_each(d, 'channels')} "
        "WHERE r.kind = 'descriptor'"
    )
    return wrap(
        "SELECT o.code AS id, o.code AS code, o.name AS name, o.media AS media, "
        "{} || o.code AS definition, o.known AS known FROM ("
        "SELECT k.code, k.name, k.media, 1 AS known FROM ({}) k UNION ALL "
        "SELECT u.code, u.code, '', 0 FROM ({}) u WHERE u.code NOT IN "
        "(SELECT k2.code FROM ({}) k2)) o",
        param(base_url.rstrip("/").removesuffix("/v1.1") + "/catalogue/parameters/"),
        cat,
        used,
        cat,
    )


def _observations(d: Dialect, base_url: str) -> Sql:
    return Sql("readings")


_THING_DESC = (
    "('Monitoring station ' || {a}.id || COALESCE(' (' || {a}.type || ')', '') || "
    "CASE WHEN {a}.operator <> '' THEN ', operated by ' || {a}.operator ELSE '' END)"
)
_STR, _NUM, _TIME = "str", "num", "time"


def _p(sql: str, type_: str, nullable: bool = True) -> Prop:
    return Prop(sql, type_, nullable)


def _obs_ids(value: str) -> list[tuple[str, object]]:
    station, _, rest = value.partition(":")
    seq, _, ord_ = rest.partition(":")
    digits = seq.isascii() and ord_.isascii() and seq.isdigit() and ord_.isdigit()
    if not (station and digits and len(seq) < 19 and len(ord_) < 10):
        return [("station", ""), ("batch_seq", -1), ("ord", -1)]  # matches nothing
    return [("station", station), ("batch_seq", int(seq)), ("ord", int(ord_))]


def _station_key(sep: str) -> Callable[[str], list[tuple[str, object]]]:
    """Id equality plus the station the id starts with: the station condition reaches the
    descriptor records through the source's window (PARTITION BY station), an index range."""

    def conditions(value: str) -> list[tuple[str, object]]:
        return [("station", value.partition(sep)[0]), ("id", value)]

    return conditions


SETS: dict[str, EntitySet] = {}


def _add(entity: EntitySet) -> None:
    SETS[entity.name] = entity


_add(
    EntitySet(
        "Things",
        "Thing",
        _things,
        {
            "id": _p("{a}.id", _STR, False),
            "name": _p("{a}.name", _STR),
            "description": _p(_THING_DESC, _STR),
            "properties/type": _p("{a}.type", _STR),
            "properties/operator": _p("{a}.operator", _STR),
            "properties/descriptorSeq": _p("{a}.dseq", _NUM),
        },
        ("id",),
        {
            "Locations": Nav("Locations", True, (("id", "station"),), "{i}.current = 1"),
            "HistoricalLocations": Nav("HistoricalLocations", True, (("id", "station"),)),
            "Datastreams": Nav("Datastreams", True, (("id", "station"),)),
        },
        ("id", "dseq", "dsealed", "body", "name", "type", "operator", "loc"),
    )
)
_add(
    EntitySet(
        "Locations",
        "Location",
        _locations,
        {
            "id": _p("{a}.id", _STR, False),
            "name": _p("{a}.name", _STR),
            "description": _p("('Location of station ' || {a}.station)", _STR),
            "encodingType": _p("'application/geo+json'", _STR),
            "properties/descriptorSeq": _p("{a}.seq", _NUM),
        },
        ("id",),
        {
            "Things": Nav("Things", True, (("station", "id"),)),
            "HistoricalLocations": Nav(
                "HistoricalLocations", True, (("station", "station"), ("id", "id"))
            ),
        },
        ("id", "station", "seq", "time", "loc", "name", "current"),
        id_conditions=_station_key("@"),
    )
)
_add(
    EntitySet(
        "HistoricalLocations",
        "HistoricalLocation",
        _locations,
        {"id": _p("{a}.id", _STR, False), "time": _p("{a}.time", _TIME, False)},
        ("id",),
        {
            "Thing": Nav("Things", False, (("station", "id"),)),
            "Locations": Nav("Locations", True, (("station", "station"), ("id", "id"))),
        },
        ("id", "station", "seq", "time"),
        id_conditions=_station_key("@"),
    )
)
_add(
    EntitySet(
        "Sensors",
        "Sensor",
        _sensors,
        {
            "id": _p("{a}.id", _STR, False),
            "name": _p("{a}.device", _STR),
            "description": _p("trim({a}.make || ' ' || {a}.model || ' ' || {a}.principle)", _STR),
            "encodingType": _p("'application/json'", _STR),
            "metadata/make": _p("{a}.make", _STR),
            "metadata/model": _p("{a}.model", _STR),
            "metadata/serialNumber": _p("{a}.serial", _STR),
            "metadata/principle": _p("{a}.principle", _STR),
            "metadata/range": _p("{a}.range_", _STR),
            "properties/station": _p("{a}.station", _STR),
        },
        ("id",),
        {"Datastreams": Nav("Datastreams", True, (("station", "station"), ("device", "device")))},
        (
            "id",
            "station",
            "device",
            "make",
            "model",
            "serial",
            "principle",
            "range_",
            "driver",
            "dseq",
        ),
        id_conditions=_station_key(":"),
    )
)
_add(
    EntitySet(
        "ObservedProperties",
        "ObservedProperty",
        _observed_properties,
        {
            "id": _p("{a}.id", _STR, False),
            "name": _p("{a}.name", _STR),
            "definition": _p("{a}.definition", _STR),
            "description": _p("{a}.name", _STR),
            "properties/code": _p("{a}.code", _STR),
        },
        ("id",),
        {"Datastreams": Nav("Datastreams", True, (("id", "param"),))},
        ("id", "code", "name", "media", "definition", "known"),
    )
)
_add(
    EntitySet(
        "Datastreams",
        "Datastream",
        _datastreams,
        {
            "id": _p("{a}.id", _STR, False),
            "name": _p("({a}.station || ' ' || {a}.device || ' ' || {a}.param)", _STR),
            "description": _p(
                "({a}.param || ' measured by ' || {a}.device || ' at station ' || {a}.station)",
                _STR,
            ),
            "unitOfMeasurement/name": _p("{a}.unit", _STR),
            "unitOfMeasurement/symbol": _p("{a}.unit", _STR),
            "properties/station": _p("{a}.station", _STR),
            "properties/device": _p("{a}.device", _STR),
            "properties/param": _p("{a}.param", _STR),
        },
        ("id",),
        {
            "Thing": Nav("Things", False, (("station", "id"),)),
            "Sensor": Nav("Sensors", False, (("station", "station"), ("sensor", "id"))),
            "ObservedProperty": Nav("ObservedProperties", False, (("param", "id"),)),
            "Observations": Nav(
                "Observations",
                True,
                (("station", "station"), ("device", "device"), ("param", "param")),
            ),
        },
        ("id", "sensor", "station", "dseq", "device", "param", "unit", "limits"),
        id_conditions=_station_key(":"),
    )
)
_add(
    EntitySet(
        "Observations",
        "Observation",
        _observations,
        {
            "id": _p("({a}.station || ':' || {a}.batch_seq || ':' || {a}.ord)", _STR, False),
            "phenomenonTime": _p("{a}.time", _TIME, False),
            "resultTime": _p("{a}.time", _TIME, False),
            "result": Prop(
                "{a}.value_text",
                "any",
                True,
                any_num="COALESCE({a}.value_float, {a}.value_int)",
                any_text="{a}.value_text",
                any_null="({a}.value_kind = 'null')",
            ),
            "resultQuality/status": _p("{a}.status", _STR, False),
            "parameters/batchSeq": _p("{a}.batch_seq", _NUM, False),
            "parameters/unsynced": _p("{a}.unsynced", "bool", False),
        },
        ("station", "batch_seq", "ord"),
        {
            "Datastream": Nav(
                "Datastreams",
                False,
                (("station", "station"), ("device", "device"), ("param", "param")),
            ),
            "FeatureOfInterest": Nav("FeaturesOfInterest", False, (("station", "id"),)),
        },
        (
            "station",
            "batch_seq",
            "ord",
            "device",
            "param",
            "unit",
            "time",
            "value_kind",
            "value_int",
            "value_float",
            "value_text",
            "status",
            "unsynced",
        ),
        id_conditions=_obs_ids,
        table=True,
    )
)
_add(
    EntitySet(
        "FeaturesOfInterest",
        "FeatureOfInterest",
        _things,
        {
            "id": _p("{a}.id", _STR, False),
            "name": _p("{a}.name", _STR),
            "description": _p("('Monitored point of station ' || {a}.id)", _STR),
            "encodingType": _p("'application/geo+json'", _STR),
        },
        ("id",),
        {"Observations": Nav("Observations", True, (("id", "station"),))},
        ("id", "name", "loc"),
    )
)
