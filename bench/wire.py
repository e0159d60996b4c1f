"""Wire: bytes per reading on the uplink, for each payload form, and a drain through a slow link.

Same data for every form: one device, 50 float32 channels polled every second (the values the
Modbus driver gives for ``simulators.float_device``: ``10 (i+1) + sin(t/7 + i)`` rounded to 3
decimals, through float32 and back to its shortest decimal), times with the poll's few ms of
jitter. Steady state: the default seal interval (10 s: 500 readings a batch). Backlog: the
default ``max_readings_per_batch`` (2000), 10,000, ``backlog_readings_per_batch`` (20,000) and
its upper bound (50,000). Compressions: none, gzip (the agent's) and, when the ``zstandard``
package is installed, zstd levels 3 and 19 — measured only, not a wire format of the agent.

Counted: every byte of the HTTPS request body / MQTT payload as sent (after compression);
headers (HTTP request line and headers, MQTT fixed header, topic and packet id) and TLS record
overhead (22 bytes per record of at most 16 KiB, TLS 1.3 AES-GCM) are reported apart. CPU:
building the payload, signing and compressing, per reading (process time). The reference line
is a gateway-style message per poll: ``{"ts":<ms>,"values":{"<param>":<value>,...}}``.

Then a drain: a buffer of sealed batches delivered by the agent's sender and HTTPS transport
(1 or 4 requests in flight) through ``simulators.link`` (a TCP proxy adding latency, capping the
rate and cutting 1 % of requests) to the reference warehouse over HTTP, which must then hold
every batch once in a whole chain; extrapolated to the issue's 2-day backlog (8.64 M readings).
The 2-day backlog itself, drained by the real agent and measured: ``bench/backlog.py``.

    .venv/bin/python bench/wire.py [--drain-batches 12] [--no-drain]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from _harness import machine, note, report

from agent.buffer import Buffer
from agent.protocol.batch import build_payload
from agent.protocol.keys import generate_key, load_jwk, load_private_key
from agent.protocol.payload_v2 import build_payload_v2
from agent.protocol.signer import Signer
from agent.seal.sealing import Sealer
from agent.send.sender import Sender
from agent.support.clock import SystemClock
from agent.transports.compression import GZIP_LEVEL
from agent.transports.https.transport import HttpsTransport, HttpsTransportConfig
from core.reading import Reading
from drivers.modbus.codec import decode, encode
from simulators.link import Link
from warehouse.reference import Warehouse
from warehouse.verify.verifier import RegisteredKey, check_chain

try:  # measured only: not a wire format of the agent (bench/RESULTS.md, "Wire")
    import zstandard
except ImportError:  # pip install zstandard
    zstandard = None

STATION = "HN-STACK-001"
CHANNELS = 50
T0 = 1_764_288_000_000
BACKLOG = 8_640_000  # 50 channels x 1 s x 48 h
HTTP_HEADERS = (
    f"POST /api/stations/{STATION}/batches HTTP/1.1\r\nHost: warehouse.example.gov.vn\r\n"
    "Accept: */*\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n"
    "User-Agent: station-agent\r\nContent-Type: application/jose\r\n"
    "Content-Encoding: gzip\r\nContent-Length: 12345\r\n\r\n"
)


def rows(polls: int, first: int = 0) -> list[tuple[str, str, str, int, float, str]]:
    """``polls`` polls of the 50-channel device, one a second."""
    out = []
    for k in range(first, first + polls):
        at = T0 + k * 1000 + (k * 7) % 5  # a poll is read a few ms after its slot
        for i in range(CHANNELS):
            value = round(10 * (i + 1) + math.sin(at / 1000 / 7 + i), 3)
            value = decode(encode(value, "float32", "ABCD"), "float32", "ABCD")
            out.append(("stack-analyzer", f"P{i:02d}", "mg/Nm3", at, value, "00"))
    return out


def gateway_messages(data: list) -> list[bytes]:
    """The reference: one ``{"ts","values"}`` JSON message per poll."""
    polls: dict[int, dict[str, float]] = {}
    for _, param, _, at, value, _ in data:
        polls.setdefault(at, {})[param] = value
    return [
        json.dumps({"ts": at, "values": v}, separators=(",", ":")).encode()
        for at, v in polls.items()
    ]


def _compressors() -> dict[str, Callable[[bytes], bytes] | None]:
    """Transport compressions measured: none, gzip (the agent's), zstd when installed."""
    out: dict[str, Callable[[bytes], bytes] | None] = {
        "": None,
        "+gzip": lambda body: gzip.compress(body, GZIP_LEVEL, mtime=0),
    }
    if zstandard is not None:
        for level in (3, 19):
            out[f"+zstd-{level}"] = zstandard.ZstdCompressor(level=level).compress
    return out


def forms(signer: Signer, batch: list) -> dict[str, tuple[bytes, float]]:
    """Form name -> (bytes as sent, CPU seconds to make them from the rows)."""
    out = {}
    for version, build in (("v1", build_payload), ("v2", build_payload_v2)):
        for suffix, compress in _compressors().items():
            if version == "v1" and suffix.startswith("+zstd"):
                continue
            start = time.process_time()
            for _ in range(5):
                body = signer.sign(build(STATION, 42, "A" * 43, T0, batch)).encode()
                if compress is not None:
                    body = compress(body)
            out[version + suffix] = (body, (time.process_time() - start) / 5)
    return out


def bytes_per_reading(signer: Signer, label: str, per_batch: int, batches: int = 4) -> float:
    """Report every form for batches of ``per_batch`` readings; returns v2+gzip's figure."""
    polls = per_batch // CHANNELS
    sizes: dict[str, int] = {}
    cpu: dict[str, float] = {}
    for b in range(batches):
        batch = rows(polls, b * polls)
        for name, (body, seconds) in forms(signer, batch).items():
            sizes[name] = sizes.get(name, 0) + len(body)
            cpu[name] = cpu.get(name, 0.0) + seconds
        gateway = gateway_messages(batch)
        sizes["gateway {ts,values}"] = sizes.get("gateway {ts,values}", 0) + sum(map(len, gateway))
    n = per_batch * batches
    target = 12 if label == "steady" else 6
    for name, size in sizes.items():
        check = name == "v2+gzip"
        report(
            f"{label} ({per_batch}/batch) {name}",
            size / n,
            "bytes/reading",
            f"<= {target}" if check else "",
            size / n <= target if check else None,
        )
    for name, seconds in cpu.items():
        report(f"{label} ({per_batch}/batch) CPU {name}", seconds / n * 1e6, "us/reading")
    body = sizes["v2+gzip"] / batches
    records = math.ceil(body / 16384)
    report(
        f"{label} ({per_batch}/batch) HTTP headers (apart)",
        len(HTTP_HEADERS) / per_batch,
        "bytes/reading",
    )
    report(
        f"{label} ({per_batch}/batch) TLS records (apart)",
        records * 22 / per_batch,
        "bytes/reading",
    )
    topic = f"stations/{STATION}/batches/gzip"
    mqtt_overhead = 1 + 4 + 2 + len(topic) + 2  # fixed header, length, topic, packet id
    report(
        f"{label} ({per_batch}/batch) MQTT header (apart)",
        mqtt_overhead / per_batch,
        "bytes/reading",
    )
    return sizes["v2+gzip"] / n


def drain(
    directory: Path, per_batch: int, batches: int, latency_s: float, rate_bps: float, window: int
) -> float:
    """Readings per second through the shaped link: the agent's sender and HTTPS transport
    deliver a buffer of sealed batches, ``window`` requests at a time."""
    key_path, jwk_path = generate_key(directory / "keys")
    registered = RegisteredKey.from_jwk(load_jwk(jwk_path))
    warehouse = Warehouse(directory / "wh.db", {STATION: registered})
    link = Link(
        "127.0.0.1",
        warehouse.start_http(),
        latency_s=latency_s,
        rate_bps=rate_bps,
        cut_ratio=0.01,
        seed=1,
    )
    port = link.start()
    buffer = Buffer(directory / "buffer.db", durability="process")
    polls = per_batch // CHANNELS
    data = rows(polls * batches)
    for k in range(polls * batches):
        poll = data[k * CHANNELS : (k + 1) * CHANNELS]
        buffer.store_poll([Reading(d, p, u, t, v, s) for d, p, u, t, v, s in poll])
    Sealer(
        buffer, Signer(load_private_key(key_path)), STATION, SystemClock(), per_batch
    ).seal_pending()
    config = HttpsTransportConfig.model_validate(
        {
            "type": "https",
            "base_url": f"http://127.0.0.1:{port}",
            "allow_plain_http": True,
            "backoff_initial_s": 0.2,
            "backoff_max_s": 1,
            "timeout_s": 60,
            "inflight": window,
        }
    )
    sender = Sender(buffer, HttpsTransport(config, STATION), SystemClock())
    start = time.perf_counter()
    sender.start()
    deadline = time.monotonic() + 600
    while buffer.first_pending_seq("https") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    elapsed = time.perf_counter() - start
    sender.stop(2.0)
    link.stop()
    buffer.close()
    held = warehouse.count(STATION)
    chain = check_chain(warehouse.jws_list(STATION), registered)
    warehouse.stop()
    assert held == (batches, batches * per_batch) and chain.ok, f"warehouse holds {held}"
    note(f"drain {per_batch}/batch x{window}: {batches} batches in {elapsed:.1f} s, {link.cut} cut")
    return batches * per_batch / elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--drain-batches", type=int, default=12)
    parser.add_argument("--no-drain", action="store_true")
    args = parser.parse_args(argv)
    for k, v in machine().items():
        note(f"{k}: {v}")
    if zstandard is None:
        note("zstd: not measured (pip install zstandard; Python 3.11 has none built in)")
    else:
        note(f"zstd: zstandard {zstandard.__version__}, levels 3 (its default) and 19")
    with tempfile.TemporaryDirectory() as tmp:
        key_path, _ = generate_key(Path(tmp) / "keys")
        signer = Signer(load_private_key(key_path))
        bytes_per_reading(signer, "steady", 500)
        bytes_per_reading(signer, "backlog", 2000)
        bytes_per_reading(signer, "backlog", 10_000, batches=2)
        bytes_per_reading(signer, "backlog", 20_000, batches=2)  # backlog_readings_per_batch
        bytes_per_reading(signer, "backlog", 50_000, batches=1)  # its upper bound
        if args.no_drain:
            return 0
        for latency_s, rate_bps, label in (
            (0.15, 1e6, "1 Mbit/s 300 ms"),
            (0.05, 1e7, "10 Mbit/s 100 ms"),
        ):
            for per_batch, window in ((2000, 1), (2000, 4), (10_000, 1), (10_000, 4)):
                rate = drain(
                    Path(tmp) / f"d{per_batch}-{rate_bps}-{window}",
                    per_batch,
                    args.drain_batches if per_batch == 2000 else max(3, args.drain_batches // 3),
                    latency_s,
                    rate_bps,
                    window,
                )
                minutes = BACKLOG / rate / 60
                what = f"{label}, {per_batch}/batch, {window} in flight"
                report(f"drain {what}", rate, "readings/s")
                report(
                    f"2-day backlog {what}",
                    minutes,
                    "minutes",
                    "<= 15",
                    minutes <= 15,
                )
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    raise SystemExit(main())
