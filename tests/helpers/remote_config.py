"""Remote configuration documents for tests, signed with joserfc (the independent oracle), and
a small loopback HTTPS server that serves them as the warehouse does
(``GET /stations/{id}/config``: 200 with ``ETag``, 304 on ``If-None-Match``, 404 when none)."""

from __future__ import annotations

import hashlib
import json
import ssl
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from joserfc import jws
from joserfc.jwk import OKPKey

TYP = "station-config+jws"


class ConfigKey:
    """A warehouse configuration key (joserfc), its public JWK file for the station to pin."""

    def __init__(self, folder: Path) -> None:
        self.key = OKPKey.generate_key("Ed25519")
        self.kid = self.key.thumbprint()
        folder.mkdir(parents=True, exist_ok=True)
        self.jwk_path = folder / f"config-{self.kid[:8]}.jwk"
        self.jwk_path.write_text(json.dumps(self.key.as_dict(private=False)))

    def sign(
        self,
        station: str,
        version: int,
        toml: str,
        log_level: dict | None = None,
        issued_at: str | None = None,
    ) -> str:
        """The compact JWS of a document (canonical JSON payload, the exact header)."""
        payload = {
            "v": 1,
            "kind": "config",
            "station": station,
            "version": version,
            "issued_at": issued_at or ms(datetime.now(UTC)),
            "config": toml,
            "log_level": log_level,
        }
        data = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
        header = {"alg": "Ed25519", "kid": self.kid, "typ": TYP}
        return jws.serialize_compact(header, data, self.key, algorithms=["Ed25519"])


def ms(t: datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def until(seconds: float) -> str:
    """RFC 3339 (ms, Z) ``seconds`` from now."""
    return ms(datetime.now(UTC) + timedelta(seconds=seconds))


def sha256_hex(text: str | bytes) -> str:
    data = text.encode() if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()


class ConfigServer:
    """Serves one document (bytes) per station over HTTPS on loopback; counts GETs."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.documents: dict[str, bytes] = {}
        self.gets = 0
        self.not_modified = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                server.gets += 1
                parts = self.path.strip("/").split("/")
                body = None
                if len(parts) == 3 and parts[0] == "stations" and parts[2] == "config":
                    body = server.documents.get(parts[1])
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                etag = f'"{sha256_hex(body)[:16]}"'
                if self.headers.get("If-None-Match") == etag:
                    server.not_modified += 1
                    self.send_response(304)
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "application/jose")
                self.send_header("ETag", etag)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(str(cert), str(key))
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def url(self, station: str) -> str:
        return f"https://localhost:{self.port}/stations/{station}/config"

    def serve(self, station: str, token: str | bytes) -> None:
        self.documents[station] = token.encode() if isinstance(token, str) else token

    def __enter__(self) -> ConfigServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def toml_text(data: dict, folder: Path) -> str:
    """``data`` as the TOML text a document carries (the tests' TOML writer)."""
    from tests.helpers.station import write_toml

    return write_toml(folder / "doc.toml", data).read_text()


def chain_records(warehouse, station_id: str, jwk_path: Path, kind: str = "config") -> list[dict]:
    """The bodies of the records of ``kind`` the warehouse holds, each batch's signature
    checked with joserfc (Ed25519) and the chain's links with hashlib."""
    import base64

    key = OKPKey.import_key(json.loads(jwk_path.read_text()))
    batches = {}
    for token in warehouse.jws_list(station_id):
        payload = json.loads(jws.deserialize_compact(token, key, algorithms=["Ed25519"]).payload)
        batches[payload["seq"]] = (payload, token)
    bodies = []
    for seq in sorted(batches):  # fresh batches may arrive before the backlog: gaps meanwhile
        payload, _ = batches[seq]
        if seq - 1 in batches:
            digest = hashlib.sha256(batches[seq - 1][1].encode()).digest()
            link = base64.urlsafe_b64encode(digest).decode().rstrip("=")
            assert payload["prev"] == link, f"chain broken at seq {seq}"
        if payload["kind"] == kind:
            bodies.append(payload["body"])
    return bodies


def wait_record(warehouse, station_id: str, jwk_path: Path, match, what: str, timeout=30.0):
    """The first ``config`` record at the warehouse for which ``match(body)`` holds."""
    from tests.helpers.station import wait_for

    def found():
        return next((b for b in chain_records(warehouse, station_id, jwk_path) if match(b)), None)

    return wait_for(found, timeout, what)


class RemoteStation:
    """A real ``station-agent run`` with ``[remote_config]`` on: one analyzer, a reference
    warehouse over HTTP (its uplink) and documents from a ``ConfigServer``."""

    def __init__(
        self,
        tmp_path: Path,
        station_id: str,
        station_key,
        analyzer_port: int,
        warehouse,
        server: ConfigServer,
        key: ConfigKey,
        ca: Path,
        **remote,
    ) -> None:
        from tests.helpers.agent_process import station_config

        self.tmp, self.id, self.warehouse, self.server, self.key = (
            tmp_path,
            station_id,
            warehouse,
            server,
            key,
        )
        self.jwk = station_key[0].parent / "station.jwk"
        data = station_config(
            tmp_path, station_id, station_key[0], analyzer_port, warehouse.start_http()
        )
        data["transports"][0]["name"] = "uplink"
        data["transports"][0]["tls"] = {"ca_file": str(ca)}  # what the fetch trusts
        data["remote_config"] = {
            "enabled": True,
            "url": server.url(station_id),
            "interval_s": 1,
            "probation_s": 4,
            "keys": str(key.jwk_path),
            **remote,
        }
        self.data = data
        self.path = tmp_path / "agent.toml"
        self.agent = None

    def write(self, data: dict | None = None) -> None:
        from tests.helpers.station import write_toml

        write_toml(self.path, data or self.data)

    def start(self):
        from tests.helpers.agent_process import AgentProcess

        if not self.path.exists():
            self.write()
        log = self.tmp / "agent.log"
        offset = len(log.read_text(errors="replace")) if log.exists() else 0
        self.agent = AgentProcess(self.path, log)
        self.agent.wait_log("event=agent_started", after=offset)
        return self.agent

    def push(self, version: int, data: dict, **kw) -> str:
        """Sign ``data`` as version ``version`` and serve it; its TOML text."""
        text = toml_text(data, self.tmp)
        self.server.serve(self.id, self.key.sign(self.id, version, text, **kw))
        return text

    def record(self, match, what: str, timeout: float = 30.0) -> dict:
        return wait_record(self.warehouse, self.id, self.jwk, match, what, timeout)

    def records(self) -> list[dict]:
        return chain_records(self.warehouse, self.id, self.jwk)

    def stop(self) -> None:
        import signal

        if self.agent is not None and self.agent.proc.poll() is None:
            self.agent.signal(signal.SIGTERM)
            code = self.agent.wait()
            assert code == 0, f"exit {code}: " + self.agent.text()[-3000:]
