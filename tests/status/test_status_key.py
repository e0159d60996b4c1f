"""``status`` shows the signing key state and the descriptor in force, from a real buffer in each
state: no rotation, one asked, one sealed with the old key kept (and which transports still owe
its acknowledgement), one failed. Oracles: the key files (JSON), plain SQL."""

from __future__ import annotations

import json
import sqlite3
import zlib

from agent.buffer import Buffer
from agent.cli.rotate_key import rotate_key
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.records.rotation.state import ask, write_request
from agent.seal.sealing import Sealer
from agent.status.figures import json_view
from agent.status.report import gather, render
from core.reading import Reading
from tests.helpers.station import http_transport, make_config

BODY = {
    "station": {"id": "S", "name": "", "type": None, "operator": "", "location": None},
    "devices": [],
    "channels": [],
    "catalogue": "x",
}


class _Clock:
    def now_ms(self) -> int:
        return 1_764_300_000_000


def test_status_shows_the_key_in_force_rotations_old_keys_and_the_descriptor(
    tmp_path, station_id, station_key
):
    key_path = station_key[0]
    transports = [http_transport(1, name="rest"), http_transport(2, name="backup")]
    config = make_config(tmp_path, station_id, key_path, [], transports)
    first_kid = json.loads(key_path.with_suffix(".jwk").read_text())["kid"]
    buffer = Buffer(config.buffer.path)
    sealer = Sealer(buffer, Signer(load_private_key(key_path)), station_id, _Clock(), 100)
    descriptor = sealer.seal_record("descriptor", {**BODY, "station": {**BODY["station"]}})
    buffer.store_poll([Reading("d", "SO2", "mg/Nm3", 1_000, 1.0, "00")])  # sealed by rotate-key
    buffer.close()

    status = gather(config)
    assert status["signing_key"] == {
        "kid": first_kid,
        "file_kid": first_kid,
        "kept_in": None,
        "rotation_request": None,
        "old_keys_kept": [],
    }
    assert status["descriptor"]["seq"] == descriptor.seq == 1
    assert status["descriptor"]["sealed_at_ms"] == 1_764_300_000_000
    text = render(status)
    assert f"signing key: kid {first_kid}\n" in text
    assert "descriptor: seq 1 (sealed 2025-11-28" in text

    # sealed (no agent running: rotate-key seals it itself); the old key is kept, owed by both
    assert rotate_key(config, 1.0) == 0
    db = sqlite3.connect(config.buffer.path)
    kinds = db.execute("SELECT seq, kind, payload FROM batches ORDER BY seq").fetchall()
    db.close()
    assert [k[:2] for k in kinds] == [(1, "descriptor"), (2, "readings"), (3, "rotation")]
    assert json.loads(zlib.decompress(kinds[1][2]))["descriptor"] == 1  # the one in force
    new_kid = json.loads(key_path.with_suffix(".jwk").read_text())["kid"]
    status = gather(config)
    key = status["signing_key"]
    assert key["kid"] == key["file_kid"] == new_kid != first_kid
    (old,) = key["old_keys_kept"]
    assert (old["kid"], old["rotation_seq"], old["owed_by"]) == (first_kid, 3, ["rest", "backup"])
    assert old["file"] == str(key_path.with_name(f"station.key.old-{first_kid}"))
    db = sqlite3.connect(config.buffer.path)
    with db:
        db.execute("INSERT INTO deliveries VALUES ('rest', 3, 1, 0, NULL)")  # 1: acknowledged
    db.close()
    (old,) = gather(config)["signing_key"]["old_keys_kept"]
    assert old["owed_by"] == ["backup"]
    text = render(gather(config))
    assert f"signing key: kid {new_kid}\n" in text
    assert f"old key {first_kid} kept (" in text and "still owed by: backup" in text

    # asked (as rotate-key leaves it for a running agent), then failed
    buffer = Buffer(config.buffer.path)
    request = ask(buffer, "NEXT-KID")
    buffer.close()
    status = gather(config)
    assert status["signing_key"]["rotation_request"]["state"] == "asked"
    assert "rotation to kid NEXT-KID ASKED" in render(status)
    assert json_view(status)["signing_key"]["rotation_request"]["asked_at"].endswith("Z")
    buffer = Buffer(config.buffer.path)
    write_request(buffer, {**request, "state": "failed", "error": "no station.key.next"})
    buffer.close()
    text = render(gather(config))
    assert "ROTATION FAILED (to kid NEXT-KID): no station.key.next" in text
