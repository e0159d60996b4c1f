"""What signed acknowledgements cost (issue 28): the warehouse signing one, the station checking
one, and the station refusing an unsigned one (a flood's per-message cost). One thread, no network.

    .venv/bin/python bench/acks.py [--n 20000]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

from agent.protocol.signed_ack import AckKeys, check_ack
from agent.transports.mqtt.acks import AckDesk
from warehouse.acks import AckKey, encode


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=20_000)
    n = parser.parse_args().n
    key = AckKey.generate()
    digest = "A" * 43
    t = time.perf_counter()
    acks = [key.ack("S-1", i + 1, digest, "stored") for i in range(n)]
    sign_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "wh.jwk"
        path.write_text(json.dumps(key.jwk))
        keys = AckKeys.load(path)
    t = time.perf_counter()
    for ack in acks:
        check_ack(ack["jws"], keys, "S-1")
    verify_s = time.perf_counter() - t
    logging.disable(logging.CRITICAL)
    desk = AckDesk("S-1", keys, "mqtt", logging.getLogger("bench"))
    unsigned = encode({"seq": 1, "digest": digest, "result": "stored"})
    t = time.perf_counter()
    for _ in range(n):
        desk.outcome(unsigned)
    refuse_s = time.perf_counter() - t
    size = max(len(encode(a)) for a in acks)
    print(f"acks: {n}, MQTT ack size {size} bytes")
    print(f"warehouse signs   {n / sign_s:9.0f} acks/s ({sign_s / n * 1e6:.0f} us each)")
    print(f"station verifies  {n / verify_s:9.0f} acks/s ({verify_s / n * 1e6:.0f} us each)")
    print(f"station refuses   {n / refuse_s:9.0f} unsigned acks/s ({refuse_s / n * 1e6:.0f} us)")


if __name__ == "__main__":
    main()
