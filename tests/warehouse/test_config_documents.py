"""Issue 32, the warehouse's side of remote configuration: ``station-warehouse config push``
signs a station's TOML file with the warehouse's key, stores it under the station's next
version (both backends), serves it at ``GET /stations/{id}/config`` (ETag, 304, 404) and
publishes it retained on MQTT. Judged by independent code: joserfc verifies the JWS with the
public JWK ``keygen`` wrote, hashlib gives the digest, json the canonical payload, a fresh paho
subscriber on a real Mosquitto what the broker retained, the backend's own client the table."""

from __future__ import annotations

import base64
import hashlib
import http.client
import json
import re
import ssl
import threading
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from joserfc import jws
from joserfc.jwk import OKPKey
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers import warehouse_stores
from tests.helpers.sealing_station import Station, kid_of
from warehouse.cli import main
from warehouse.https_intake import HttpsIntake, tls_context
from warehouse.intake import Intake
from warehouse.store import open_store

pg_server = warehouse_stores.pg_server
store_url = warehouse_stores.store_url

TOML = '[station]\nid = "CFG-01"\nname = "Trạm Hà Nội"  # UTF-8 as is\n\n[poll]\ninterval_s = 60\n'
CANONICAL_MEMBERS = ["config", "issued_at", "kind", "log_level", "station", "v", "version"]


@pytest.fixture
def setup(tmp_path: Path, store_url: str, capsys) -> dict:
    """A warehouse.toml on the store, a key from ``keygen``, station CFG-01 registered."""
    assert main(["keygen", "--out", str(tmp_path / "keys")]) == 0
    config = tmp_path / "warehouse.toml"
    storage = (
        f'sqlite = "{store_url.removeprefix("sqlite:///")}"'
        if store_url.startswith("sqlite")
        else f'postgres = "{store_url}"'
    )
    config.write_text(f'[storage]\n{storage}\n[acks]\nkey_file = "keys/warehouse.key"\n')
    st = Station("CFG-01")
    store = open_store(store_url)
    store.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
    store.close()
    (tmp_path / "station.toml").write_bytes(TOML.encode())
    capsys.readouterr()
    jwk = json.loads((tmp_path / "keys" / "warehouse.jwk").read_text())
    return {"config": config, "url": store_url, "dir": tmp_path, "jwk": jwk}


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def push(capsys, setup: dict, *extra: str, file: Path | None = None, station: str = "CFG-01"):
    path = str(file or setup["dir"] / "station.toml")
    return run(capsys, "config", "push", station, path, "--config", str(setup["config"]), *extra)


def verified(token: str, jwk: dict) -> tuple[dict, bytes]:
    """(protected header, payload bytes) of ``token``, verified by joserfc with ``jwk``."""
    public = {k: jwk[k] for k in ("kty", "crv", "x")}
    obj = jws.deserialize_compact(token, OKPKey.import_key(public), algorithms=["Ed25519"])
    return obj.protected, obj.payload


@pytest.fixture
def served(setup, tls_files):
    """The HTTPS intake on the store, and a GET that sends the path verbatim."""
    store = open_store(setup["url"])
    server = HttpsIntake(
        Intake(store), tls=tls_context(tls_files.server_cert, tls_files.server_key)
    )
    server.start()
    verify = ssl.create_default_context(cafile=str(tls_files.ca))

    def get(path: str, **headers: str) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPSConnection("127.0.0.1", server.port, context=verify, timeout=10)
        try:
            conn.request("GET", path, headers=headers)
            answer = conn.getresponse()
            return answer.status, dict(answer.getheaders()), answer.read()
        finally:
            conn.close()

    yield get
    server.stop()
    store.close()


def test_a_pushed_document_is_served_signed_by_the_warehouse_key(setup, served, capsys) -> None:
    code, out, err = push(capsys, setup)
    assert code == 0, err
    digest = hashlib.sha256(TOML.encode()).hexdigest()
    assert f"version 1 stored, digest {digest}" in out
    status, headers, body = served("/stations/CFG-01/config")
    assert status == 200 and headers["Content-Type"] == "application/jose"
    assert headers["ETag"] == '"1"' and int(headers["Content-Length"]) == len(body)
    header, payload = verified(body.decode("ascii"), setup["jwk"])
    assert header == {"alg": "Ed25519", "kid": setup["jwk"]["kid"], "typ": "station-config+jws"}
    document = json.loads(payload)
    assert document["config"].encode("utf-8") == (setup["dir"] / "station.toml").read_bytes()
    assert {k: document[k] for k in ("v", "kind", "station", "version", "log_level")} == {
        "v": 1, "kind": "config", "station": "CFG-01", "version": 1, "log_level": None,
    }  # fmt: skip
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", document["issued_at"])
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    assert payload == canonical.encode() and list(document) == CANONICAL_MEMBERS
    protected = base64.urlsafe_b64decode(body.split(b".")[0] + b"==")
    assert protected == (
        b'{"alg":"Ed25519","kid":"'
        + setup["jwk"]["kid"].encode()
        + b'","typ":"station-config+jws"}'
    )


def test_versions_increase_and_the_etag_answers_304(setup, served, capsys) -> None:
    assert push(capsys, setup)[0] == 0
    code, out, err = push(capsys, setup, "--log-level", "debug", "--for", "30m", "--by", "ops")
    assert code == 0 and "version 2 stored" in out, err
    status, headers, body = served("/stations/CFG-01/config", **{"If-None-Match": '"1"'})
    assert status == 200 and headers["ETag"] == '"2"'
    document = json.loads(verified(body.decode(), setup["jwk"])[1])
    assert document["version"] == 2 and document["log_level"]["level"] == "debug"
    issued, until = document["issued_at"], document["log_level"]["until"]
    assert _ms(until) - _ms(issued) == 30 * 60 * 1000
    for tag in ('"2"', 'W/"2"', '"1", "2"', "*"):
        status, headers, body = served("/stations/CFG-01/config", **{"If-None-Match": tag})
        assert (status, headers["ETag"], body) == (304, '"2"', b""), tag
    assert push(capsys, setup)[0] == 0
    assert served("/stations/CFG-01/config", **{"If-None-Match": '"2"'})[0] == 200
    rows = warehouse_stores.query(
        setup["url"], "SELECT version, pushed_by FROM config_documents ORDER BY version"
    )
    assert [r[0] for r in rows] == [1, 2, 3] and rows[1][1] == "ops"
    code, out, _ = run(capsys, "config", "show", "CFG-01", "--config", str(setup["config"]))
    assert code == 0 and "version 3" in out and out.endswith(TOML)


def _ms(text: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@pytest.mark.parametrize(
    "path",
    [
        "/stations/CFG-01/config",  # registered, nothing pushed yet
        "/stations/NOPE-01/config",  # not registered
        "/stations/../config",
        "/stations/%2e%2e%2fCFG-01/config",
        "/stations/CFG-01/config/extra",
        "/stations/CFG-01/../CFG-01/config",
        "/stations//config",
        "/stations/" + "A" * 65 + "/config",
    ],
)
def test_no_document_unknown_station_or_bad_path_is_404(setup, served, path) -> None:
    status, headers, body = served(path)
    assert status == 404 and headers["Content-Type"] == "application/json"
    assert json.loads(body)["status"] == 404


def test_a_get_of_the_batches_url_is_405_so_a_station_check_sees_the_right_url(
    setup, served
) -> None:
    """``station-agent check-transports`` GETs the batches URL: a 404 there means a wrong
    base_url or station id, so the intake answers 405 (Allow: POST) for the right one."""
    status, headers, body = served("/stations/CFG-01/batches")
    assert status == 405 and headers["Allow"] == "POST"
    assert json.loads(body)["status"] == 405


def test_a_get_with_a_body_is_refused_and_other_stations_see_nothing(
    setup, served, capsys, tls_files
) -> None:
    assert push(capsys, setup)[0] == 0
    store = open_store(setup["url"])
    other = Station("CFG-02")
    store.add_station(other.id, other.signer.jwk, kid_of(other.signer.jwk))
    store.close()
    assert served("/stations/CFG-02/config")[0] == 404
    status, _headers, body = served("/stations/CFG-01/config", **{"Content-Length": "5"})
    assert status == 400 and b"a GET has no body" in body


def test_versions_strictly_increase_in_the_database(setup, capsys) -> None:
    assert push(capsys, setup)[0] == 0
    assert push(capsys, setup)[0] == 0
    url = setup["url"]
    row = warehouse_stores.query(
        url, "SELECT station, jws, digest, issued_at FROM config_documents"
    )
    for version in (1, 2):  # not above the latest: refused by the database itself
        with pytest.raises(Exception, match="exceed"):
            warehouse_stores.query(
                url,
                "INSERT INTO config_documents (station, version, jws, digest, issued_at) "
                "VALUES (?, ?, ?, ?, ?)",
                (row[0][0], version, row[0][1], row[0][2], row[0][3]),
            )
    for sql in ("UPDATE config_documents SET version = 9", "DELETE FROM config_documents"):
        with pytest.raises(Exception, match="append-only"):
            warehouse_stores.query(url, sql)
    assert [r[0] for r in warehouse_stores.query(url, "SELECT version FROM config_documents")] == [
        1,
        2,
    ]


def test_concurrent_pushes_take_distinct_versions(setup, capsys) -> None:
    from warehouse.acks import AckKey
    from warehouse.remote_config import document_maker

    key = AckKey.load(setup["dir"] / "keys" / "warehouse.key")
    versions: list[int] = []

    def one() -> None:
        store = open_store(setup["url"])
        try:
            for _ in range(3):
                versions.append(
                    store.add_config("CFG-01", document_maker(key, "CFG-01", TOML)).version
                )
        finally:
            store.close()

    threads = [threading.Thread(target=one) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(versions) == list(range(1, 13))


def test_bad_files_and_unknown_stations_are_refused_with_a_clear_error(setup, capsys) -> None:
    folder = setup["dir"]
    broken = folder / "broken.toml"
    broken.write_text('[station]\nid = "CFG-01"\nname = \n')
    code, _out, err = push(capsys, setup, file=broken)
    assert code == 2 and f"{broken}: not valid TOML" in err and "line 3" in err
    big = folder / "big.toml"
    big.write_bytes(b"# " + b"x" * (96 * 1024 - 2) + b"\n")
    code, _out, err = push(capsys, setup, file=big)
    assert code == 2 and f"{big}: larger than 98304 bytes" in err
    quoted = folder / "quoted.toml"  # within 96 KiB, but its JSON escapes pass 128 KiB signed
    quoted.write_bytes(b"# " + b'"' * (90 * 1024) + b"\n")
    code, _out, err = push(capsys, setup, file=quoted)
    assert code == 2 and "the signed document is" in err and "at most 131072" in err
    code, _out, err = push(capsys, setup, station="NOPE-01", file=_file(folder, "NOPE-01"))
    assert code == 1 and "station 'NOPE-01' is not registered" in err
    code, _out, err = push(capsys, setup, station="CFG-02")
    assert code == 2 and "station.id is 'CFG-01'" in err
    code, _out, err = push(capsys, setup, file=folder / "missing.toml")
    assert code == 2 and "missing.toml: cannot be read" in err
    code, _out, err = push(capsys, setup, "--for", "30m")
    assert code == 2 and "--log-level and --for go together" in err
    code, _out, err = push(capsys, setup, "--log-level", "debug", "--for", "2d")
    assert code == 2 and "--for '2d'" in err
    code, _out, err = push(capsys, setup, "--by", "x" * 201)
    assert code == 2 and "--by: expected a name of 1 to 200 characters" in err
    assert warehouse_stores.query(setup["url"], "SELECT count(*) FROM config_documents") == [(0,)]
    code, _out, err = run(capsys, "config", "show", "CFG-01", "--config", str(setup["config"]))
    assert code == 1 and "no configuration document" in err


def _file(folder: Path, station: str) -> Path:
    path = folder / f"{station}.toml"
    path.write_text(f'[station]\nid = "{station}"\n')
    return path


def test_a_push_without_the_warehouse_key_is_refused(setup, capsys) -> None:
    setup["config"].write_text(setup["config"].read_text().split("[acks]")[0])
    code, _out, err = push(capsys, setup)
    assert code == 2 and "acks.key_file: missing" in err


def retained(port: int, topic: str, timeout: float = 10.0) -> mqtt.MQTTMessage:
    """The message a fresh subscriber of ``topic`` receives at once: the retained one."""
    got: list[mqtt.MQTTMessage] = []
    arrived = threading.Event()
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"fresh-{threading.get_ident()}")
    client.on_connect = lambda c, *a: c.subscribe(topic, 1)
    client.on_message = lambda c, u, msg: (got.append(msg), arrived.set())
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        assert arrived.wait(timeout), f"nothing retained on {topic}"
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0]


def test_a_push_is_retained_on_mqtt_for_a_fresh_subscriber(setup, mosquitto, capsys) -> None:
    text = setup["config"].read_text()
    setup["config"].write_text(f'{text}[intake.mqtt]\nport = {mosquitto.port}\nprefix = "fleet"\n')
    code, out, err = push(capsys, setup)
    assert code == 0 and "published retained on fleet/CFG-01/config" in out, err
    assert push(capsys, setup, "--log-level", "info", "--for", "1h")[0] == 0
    message = retained(mosquitto.port, "fleet/CFG-01/config")
    assert message.retain and message.qos == 1
    document = json.loads(verified(message.payload.decode("ascii"), setup["jwk"])[1])
    assert document["version"] == 2 and document["config"] == TOML
    stored = warehouse_stores.query(
        setup["url"], "SELECT jws FROM config_documents WHERE version = 2"
    )
    assert message.payload.decode() == stored[0][0]


def test_config_push_section_wins_and_a_broker_down_says_how_to_retry(
    setup, mosquitto, capsys
) -> None:
    text = setup["config"].read_text()
    port = mosquitto.port
    mosquitto.stop()
    setup["config"].write_text(
        f'{text}[intake.mqtt]\nport = 1\n[config_push]\nmqtt_url = "mqtt://127.0.0.1:{port}"\n'
    )
    code, _out, err = push(capsys, setup)
    assert code == 1 and "version 1 is stored and served over HTTPS, but not published" in err
    assert "station-warehouse config publish CFG-01" in err
    mosquitto.start()
    code, out, err = run(capsys, "config", "publish", "CFG-01", "--config", str(setup["config"]))
    assert code == 0 and f"stations/CFG-01/config at 127.0.0.1:{port}" in out, err
    assert (
        json.loads(
            verified(retained(port, "stations/CFG-01/config").payload.decode(), setup["jwk"])[1]
        )["version"]
        == 1
    )


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ('[config_push]\nmqtt_url = "http://x"\n', "config_push.mqtt_url: expected mqtt://"),
        (
            '[config_push]\nmqtt_url = "mqtt://h"\ntopic_prefix = "a/+"\n',
            "config_push.topic_prefix",
        ),
        ("[config_push]\nbroker = 1\n", "config_push.broker: not a known key"),
        ('[intake.mqtt]\nport = "1883"\n', "intake.mqtt: expected host (a text) and port"),
    ],
)
def test_a_bad_config_push_section_is_named(setup, capsys, section, expected) -> None:
    setup["config"].write_text(setup["config"].read_text() + section)
    code, _out, err = push(capsys, setup)
    assert code == 2 and expected in err
    assert warehouse_stores.query(setup["url"], "SELECT count(*) FROM config_documents") == [(0,)]


def test_the_reference_warehouse_serves_and_publishes_documents(
    tmp_path, station_key, mosquitto
) -> None:
    from warehouse.acks import AckKey
    from warehouse.reference import Warehouse, load_station_jwk
    from warehouse.remote_config import ConfigPushError

    key = AckKey.generate()
    registered = {"REF-01": load_station_jwk(station_key[0].parent / "station.jwk")}
    warehouse = Warehouse(tmp_path / "wh.db", registered, key)
    try:
        port = warehouse.start_http()
        warehouse.start_mqtt("127.0.0.1", mosquitto.port, prefix="ref")

        def get(path: str, **headers: str) -> tuple[int, dict, bytes]:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request("GET", path, headers=headers)
                answer = conn.getresponse()
                return answer.status, dict(answer.getheaders()), answer.read()
            finally:
                conn.close()

        assert get("/stations/REF-01/config")[0] == 404
        with pytest.raises(ConfigPushError, match="not registered"):
            warehouse.push_config("REF-02", "x = 1\n")
        assert warehouse.push_config("REF-01", "a = 1\n").version == 1
        doc = warehouse.push_config("REF-01", TOML, log_level=("debug", 600))
        status, headers, body = get("/stations/REF-01/config", **{"If-None-Match": '"1"'})
        assert (status, headers["ETag"], body.decode()) == (200, '"2"', doc.jws)
        document = json.loads(verified(body.decode(), key.jwk)[1])
        assert document["config"] == TOML and document["station"] == "REF-01"
        assert get("/stations/REF-01/config", **{"If-None-Match": '"2"'})[:3:2] == (304, b"")
        assert get("/stations/REF-02/config")[0] == 404
        message = retained(mosquitto.port, "ref/REF-01/config")
        assert message.retain and message.payload.decode() == doc.jws
    finally:
        warehouse.stop()


_GOOD = {
    "v": 1, "kind": "config", "station": "CFG-01", "version": 1,
    "issued_at": "2026-12-07T11:00:00.000Z", "config": "a = 1\n", "log_level": None,
}  # fmt: skip


@pytest.mark.parametrize(
    "change",
    [
        {"v": True},
        {"v": 2},
        {"kind": "ack"},
        {"version": 0},
        {"version": True},
        {"version": 2**63},
        {"station": "../x"},
        {"issued_at": "2026-13-07T11:00:00.000Z"},
        {"issued_at": "2026-12-07T11:00:00Z"},
        {"config": "é" * (48 * 1024 + 1)},  # within 96 Ki characters, over 96 KiB of UTF-8
        {"log_level": {"level": "trace", "until": "2026-12-07T11:30:00.000Z"}},
        {"log_level": {"level": "debug"}},
        {"log_level": {"level": "debug", "until": "2026-12-08T11:00:00.001Z"}},  # over 24 h
        {"log_level": {"level": "debug", "until": "2036-12-07T11:00:00.000Z"}},
        {"extra": 1},
    ],
)
def test_the_payload_model_is_strict_and_bounded(change) -> None:
    from pydantic import ValidationError

    from core.remote_config import RemoteConfig

    assert RemoteConfig.model_validate(_GOOD).version == 1
    day = {"level": "debug", "until": "2026-12-08T11:00:00.000Z"}  # 24 h after issued_at
    assert RemoteConfig.model_validate({**_GOOD, "log_level": day}).log_level is not None
    with pytest.raises(ValidationError):
        RemoteConfig.model_validate({**_GOOD, **change})
