"""A station whose descriptor changed three times (tests/helpers/sta_fill.py ``fill_moves``:
descriptors at seq 1, 3, 4, 5, the last one received before 3 and 4), over HTTP on SQLite and
PostgreSQL: the evidence list, the Thing, its Location and HistoricalLocations each name the
latest descriptor in force (the highest seq) as current, and only that one. The oracle is what
the station signed, kept by the fill, and joserfc for the signatures."""

from __future__ import annotations

import hashlib
import json

import joserfc.jwk
import joserfc.jws

from agent.protocol.jws import b64url
from tests.helpers import sta_api, warehouse_stores
from tests.helpers.sta_fill import MOVE_NAMES, MOVE_PLACES, MOVE_UNITS, MOVES

pg_server, moves_api = warehouse_stores.pg_server, sta_api.moves_api
DESCRIPTORS = sorted(MOVE_NAMES)  # [1, 3, 4, 5]
LATEST = DESCRIPTORS[-1]


def test_exactly_one_descriptor_is_current_and_it_is_the_latest_in_force(moves_api) -> None:
    """Issue 30 item 4: every descriptor as signed evidence; ``current`` marks the one in force
    (the highest seq, whatever order they arrived in), and no other."""
    listing = moves_api.json(f"/evidence/{MOVES}/descriptors")["descriptors"]
    assert [d["seq"] for d in listing] == DESCRIPTORS
    assert [d["seq"] for d in listing if d["current"] is True] == [LATEST]
    assert all(d["current"] is False for d in listing if d["seq"] != LATEST)
    key = joserfc.jwk.OKPKey.import_key({k: v for k, v in moves_api.oracle["key"].items()
                                         if k != "alg"})
    for d in listing:
        jws = moves_api.get(d["jws"].removeprefix(moves_api.origin)).content
        assert jws == moves_api.oracle["tokens"][d["seq"]]
        assert d["digest"] == b64url(hashlib.sha256(jws).digest())
        assert d["sealedAt"] == moves_api.oracle["sealed"][d["seq"]]
        body = json.loads(joserfc.jws.deserialize_compact(jws, key, algorithms=["Ed25519"])
                          .payload)["body"]
        assert body["station"]["name"] == MOVE_NAMES[d["seq"]]


def test_the_thing_and_its_datastream_come_from_the_latest_descriptor(moves_api) -> None:
    """http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel/thing: the Thing is the
    station as its latest descriptor states it."""
    thing = moves_api.json(f"/v1.1/Things('{MOVES}')")
    assert thing["name"] == MOVE_NAMES[LATEST]
    assert thing["properties"]["descriptorSeq"] == LATEST
    assert thing["properties"]["descriptor"].endswith(f"/descriptors/{LATEST}.jws")
    [ds] = moves_api.json(f"/v1.1/Things('{MOVES}')/Datastreams")["value"]
    assert ds["unitOfMeasurement"]["symbol"] == MOVE_UNITS[LATEST]
    assert ds["properties"]["descriptorSeq"] == LATEST


def test_the_things_location_is_the_latest_place_and_history_has_each_move(moves_api) -> None:
    """http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel/location and
    .../historical-location: one current Location (the last place), a HistoricalLocation per
    change of place (seq 4 renamed the station without moving it: no new location)."""
    [loc] = moves_api.json(f"/v1.1/Things('{MOVES}')/Locations")["value"]
    lat, lon = MOVE_PLACES[LATEST]
    assert loc["location"]["coordinates"] == [lon, lat]
    assert loc["properties"]["descriptorSeq"] == LATEST
    moves = [s for s in DESCRIPTORS
             if s == DESCRIPTORS[0] or MOVE_PLACES[s] != MOVE_PLACES[DESCRIPTORS[
                 DESCRIPTORS.index(s) - 1]]]
    assert moves == [1, 3, 5]
    history = moves_api.json(f"/v1.1/Things('{MOVES}')/HistoricalLocations",
                             **{"$orderby": "time"})["value"]
    assert [h["time"] for h in history] == [moves_api.oracle["sealed"][s] for s in moves]
    every = moves_api.json("/v1.1/Locations", **{"$orderby": "id"})["value"]
    assert sorted(x["properties"]["descriptorSeq"] for x in every) == moves
    assert {x["properties"]["descriptorSeq"]: x["location"]["coordinates"] for x in every} == {
        s: [MOVE_PLACES[s][1], MOVE_PLACES[s][0]] for s in moves}
