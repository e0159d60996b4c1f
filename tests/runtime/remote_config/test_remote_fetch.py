"""The agent's HTTPS fetch of its document (issue 32): ``If-None-Match`` with the last ETag, so
an unchanged document costs a 304 and is not handed on again; a new one is; the interval is
jittered. A real loopback HTTPS server (the tests' ``ConfigServer``, which answers as the
warehouse does) and the agent's own ``Poller``."""

from __future__ import annotations

import threading

from agent.runtime.remote_config.fetch import HttpsFetch, Poller, jittered
from agent.support.sections import TlsConfig
from tests.helpers.remote_config import ConfigServer
from tests.helpers.station import wait_for


def test_an_unchanged_document_costs_a_304_and_is_handed_on_once(tls_files) -> None:
    delivered: list[bytes] = []
    lock = threading.Lock()

    def deliver(body: bytes, via: str) -> None:
        with lock:
            delivered.append(body)

    with ConfigServer(tls_files.server_cert, tls_files.server_key) as server:
        server.serve("ST-1", b"first.document.token")
        fetch = HttpsFetch(server.url("ST-1"), TlsConfig(ca_file=tls_files.ca))
        poller = Poller(fetch, 0.05, deliver)
        poller.start()
        try:
            wait_for(lambda: server.not_modified >= 5, 30, "five 304 answers")
            assert delivered == [b"first.document.token"]
            server.serve("ST-1", b"second.document.token")
            wait_for(lambda: len(delivered) == 2, 30, "the new document handed on")
            seen = server.not_modified
            wait_for(lambda: server.not_modified >= seen + 3, 30, "304s for the new one")
            poller.refetch()  # asked again without If-None-Match: handed on once more
            wait_for(lambda: len(delivered) == 3, 30, "the document fetched afresh")
        finally:
            poller.stop()
    assert delivered[1:] == [b"second.document.token"] * 2


def test_the_interval_is_jittered_within_20_percent() -> None:
    waits = [jittered(300.0) for _ in range(500)]
    assert all(240.0 <= w <= 360.0 for w in waits)
    assert max(waits) - min(waits) > 60.0  # spread across the band, not one fixed wait
