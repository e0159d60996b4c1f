"""The HTTPS intake (``warehouse.https_intake.HttpsIntake`` on the Intake): TLS on loopback,
answers as docs/protocol.md says with the ack in the JSON body, compressed bodies inflated and
bounded, and a real ``station-agent`` delivering to it (its batches stored exactly once)."""

from __future__ import annotations

import gzip
import ssl

import httpx
import pytest

from simulators.certs import make_tls_files
from tests.helpers import warehouse_stores
from tests.helpers.sealing_station import Station, digest, kid_of
from warehouse.https_intake import HttpsIntake, tls_context
from warehouse.intake import Intake
from warehouse.verify.inflate import MAX_INFLATED

pg_server, store_url, store = (
    warehouse_stores.pg_server,
    warehouse_stores.store_url,
    warehouse_stores.store,
)


@pytest.fixture
def tls(tmp_path_factory):
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def served(store, tls):
    server = HttpsIntake(Intake(store), tls=tls_context(tls.server_cert, tls.server_key))
    server.start()
    verify = ssl.create_default_context(cafile=str(tls.ca))
    client = httpx.Client(base_url=f"https://127.0.0.1:{server.port}", verify=verify)
    yield client
    client.close()
    server.stop()


def post(client: httpx.Client, station: str, body: bytes, **headers: str) -> httpx.Response:
    return client.post(
        f"/stations/{station}/batches",
        content=body,
        headers={"Content-Type": "application/jose", **headers},
    )


def test_a_batch_over_https_is_answered_with_its_ack(served, store, store_url) -> None:
    st = Station()
    store.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
    token = st.readings(1)
    r = post(served, st.id, gzip.compress(token.encode(), mtime=0), **{"Content-Encoding": "gzip"})
    assert r.status_code == 201
    assert r.json() == {
        "status": 201,
        "message": "stored seq 1",
        "seq": 1,
        "digest": digest(token),
        "result": "stored",
    }
    again = post(served, st.id, token.encode())
    assert again.status_code == 409 and again.json()["result"] == "duplicate"
    [(via, jws)] = warehouse_stores.query(store_url, "SELECT via, jws FROM batches")
    assert via == "https" and bytes(jws) == token.encode()  # the JWS inflated, never the gzip
    r = post(served, "NOBODY", token.encode())
    assert r.status_code == 404 and "not registered" in r.json()["message"]
    r = post(served, st.id, b"x", **{"Content-Encoding": "br"})
    assert r.status_code == 415
    bomb = gzip.compress(b"a" * (MAX_INFLATED + 1), compresslevel=9, mtime=0)
    r = post(served, st.id, bomb, **{"Content-Encoding": "gzip"})
    assert r.status_code == 413
    r = post(served, st.id, st.readings(2)[:-5].encode())
    assert r.status_code == 400 and r.json()["result"] == "rejected" and r.json()["reason"]


def test_plain_http_to_the_tls_port_is_refused(served) -> None:
    port = served.base_url.port
    with pytest.raises(httpx.HTTPError):
        httpx.post(f"http://127.0.0.1:{port}/stations/X/batches", content=b"x", timeout=5)


def test_station_warehouse_serve_answers_until_sigterm(tmp_path, tls) -> None:
    """The `serve` command: warehouse.toml's [intake.https], a batch stored, SIGTERM ends it."""
    import signal
    import subprocess
    import sys
    from pathlib import Path

    from warehouse.cluster.ports import free_port
    from warehouse.store import open_store

    port = free_port()
    config = tmp_path / "warehouse.toml"
    config.write_text(
        '[storage]\nsqlite = "w.db"\n[intake.https]\n'
        f'port = {port}\ncert_file = "{tls.server_cert}"\nkey_file = "{tls.server_key}"\n'
    )
    store = open_store(f"sqlite:///{tmp_path / 'w.db'}")
    store.migrate()
    st = Station()
    store.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
    store.close()
    script = Path(sys.executable).parent / "station-warehouse"
    proc = subprocess.Popen(
        [str(script), "serve", "--config", str(config)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == f"warehouse intake listening on https://127.0.0.1:{port}\n"
        verify = ssl.create_default_context(cafile=str(tls.ca))
        with httpx.Client(base_url=f"https://127.0.0.1:{port}", verify=verify) as client:
            assert post(client, st.id, st.readings(1).encode()).status_code == 201
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(30)
    assert code == 0
    assert warehouse_stores.query(f"sqlite:///{tmp_path / 'w.db'}", "SELECT seq FROM batches") == [
        (1,)
    ]


def test_a_postgresql_restart_is_a_500_then_the_same_batch_is_stored_once(tmp_path, tls) -> None:
    """The database goes away under the HTTPS intake: the batch is answered 500 (the station
    retries, nothing acknowledged), and once PostgreSQL is back the same bytes are stored."""
    from warehouse.cluster.postgres import PostgresServer
    from warehouse.store import open_store

    pg = PostgresServer(tmp_path / "pg").start()
    try:
        store = open_store(pg.dsn)
        store.migrate()
        st = Station()
        store.add_station(st.id, st.signer.jwk, kid_of(st.signer.jwk))
        server = HttpsIntake(Intake(store), tls=tls_context(tls.server_cert, tls.server_key))
        server.start()
        verify = ssl.create_default_context(cafile=str(tls.ca))
        with httpx.Client(base_url=f"https://127.0.0.1:{server.port}", verify=verify) as client:
            assert post(client, st.id, st.readings(1).encode()).status_code == 201
            pg.crash()
            two = st.readings(2).encode()
            r = post(client, st.id, two)
            assert r.status_code == 500 and "warehouse error" in r.json()["message"]
            pg.start()
            assert post(client, st.id, two).status_code == 201
            assert post(client, st.id, two).status_code == 409
        server.stop()
        assert [bytes(t) for t in store.jws_list(st.id)] == [st.tokens[1].encode(), two]
        store.close()
    finally:
        pg.stop()
