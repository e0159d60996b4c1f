"""SensorThings API latency at scale (issue 30): p50/p99 of the common queries over HTTP, each
beside a plain SQL query of the same rows in the same run.

    .venv/bin/python bench/sta.py --observations 20000000 [--db PATH] [--keep]

Load: STATIONS stations x 50 datastreams x N one-minute readings. Each station's descriptor is
a real signed record stored through warehouse.intake.Intake; the readings are written straight
into the store's ``readings`` table (schema 1, the rows the Intake would write; a signed path
at this size would measure the intake, not the API), the index built after the load. Queries
(SQLite store, the API in-process on loopback, one keep-alive connection):

  latest    Things(s)/Datastreams?$expand=Observations($top=1;$orderby=phenomenonTime desc)
  day       Datastreams(d)/Observations?$filter=<one UTC day>&$top=1000
  hour      Things(s)/Datastreams?$expand=Observations($filter=<one hour>;$top=60)
  page1     Datastreams(d)/Observations?$top=4           (and its SQL: LIMIT 4)
  page1000  the 1,000th page of the same, through @iot.nextLink (keyset)
  skip      the same rows by $skip=3996 (OFFSET), for comparison

Each API request's CPU time, core waits (server, client), GC passes and disk reads are printed
for the p50, p99 and slowest request (bench/_request_probe.py). p99 of the default 50 runs is
the slowest request; ``--only hour --repeat 300`` gives one that is a percentile.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from _request_probe import RequestProbe  # noqa: E402
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402

from agent.protocol.payload_v3 import build_record  # noqa: E402
from agent.protocol.signer import Signer  # noqa: E402
from warehouse.api_command import settle_heap  # noqa: E402
from warehouse.intake import Intake  # noqa: E402
from warehouse.sta.app import StaService  # noqa: E402
from warehouse.sta.backend import open_backend  # noqa: E402
from warehouse.sta.server import serve  # noqa: E402
from warehouse.store import open_store  # noqa: E402

CHANNELS = 50
T0 = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def iso(t: dt.datetime) -> str:
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def load(url: str, stations: int, minutes: int) -> float:
    store = open_store(url)
    store.migrate()
    intake = Intake(store)
    for s in range(stations):
        sid = f"B-{s:03d}"
        signer = Signer(Ed25519PrivateKey.generate())
        store.add_station(sid, signer.jwk, signer.kid)
        body = {"station": {"id": sid, "name": f"Bench station {s}", "type": "air",
                            "operator": "bench", "location": {"lat": 21.0, "lon": 105.8,
                                                              "vn2000": None}},
                "devices": [{"name": "aqm", "driver": "modbus_tcp", "make": "M", "model": "X",
                             "serial_number": str(s), "principle": "p", "range": "r"}],
                "channels": [{"device": "aqm", "param": f"P{c:02d}", "unit": "ug/m3",
                              "limits": None} for c in range(CHANNELS)],
                "catalogue": "2026.11.1"}
        token = signer.sign(build_record("descriptor", body, sid, 1, None,
                                         int(T0.timestamp() * 1000))).encode()
        assert intake.receive(sid, token, via="bench").status == 201
    if url.startswith("postgresql://"):
        months = {(t.year, t.month) for t in (T0, T0 + dt.timedelta(minutes=minutes))}
        store.ensure_partitions(months)  # type: ignore[attr-defined]
    store.close()
    if url.startswith("postgresql://"):
        return _load_postgres(url, stations, minutes)
    db = sqlite3.connect(url.removeprefix("sqlite:///"))
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = OFF")
    db.execute("DROP INDEX readings_datastream")
    started = time.monotonic()
    for h in range(0, minutes, 60):
        db.execute(_HOUR_SQL, {"h": h, "n": min(60, minutes - h), "stations": stations,
                               "channels": CHANNELS, "t0": int(T0.timestamp())})
        db.commit()
    loaded = time.monotonic() - started
    db.execute("CREATE INDEX readings_datastream ON readings "
               "(station, device, param, time, batch_seq, ord)")
    db.execute("ANALYZE")
    db.commit()
    db.close()
    return loaded


# The rows of _hours (same order, same values but the random ones) written by SQLite itself:
# ~10 x faster than from Python rows, which took 6 minutes for 150 MB beside the soaks
_HOUR_SQL = """
WITH RECURSIVE s(s) AS (SELECT 0 UNION ALL SELECT s + 1 FROM s WHERE s + 1 < :stations),
c(c) AS (SELECT 0 UNION ALL SELECT c + 1 FROM c WHERE c + 1 < :channels),
m(m) AS (SELECT 0 UNION ALL SELECT m + 1 FROM m WHERE m + 1 < :n)
INSERT INTO readings
SELECT printf('B-%03d', s), 2 + :h / 60, c * :n + m, 'aqm', printf('P%02d', c), 'ug/m3',
       strftime('%Y-%m-%dT%H:%M:%S.000Z', :t0 + (:h + m) * 60, 'unixepoch'), 'float', NULL,
       (abs(random()) % 20001) / 100.0, NULL, '00', 0
FROM s, c, m ORDER BY s, c, m
"""


def _hours(stations: int, minutes: int, as_text: bool = True):
    """The readings, an hour of every station at a time (one batch per station and hour)."""
    per_batch = 60
    for h in range(0, minutes, per_batch):
        rows = []
        for s in range(stations):
            sid = f"B-{s:03d}"
            seq = 2 + h // per_batch
            o = 0
            for c in range(CHANNELS):
                for m in range(h, min(h + per_batch, minutes)):
                    t = T0 + dt.timedelta(minutes=m)
                    rows.append((sid, seq, o, "aqm", f"P{c:02d}", "ug/m3",
                                 iso(t) if as_text else t, "float", None,
                                 round(random.uniform(0, 200), 2), None, "00",
                                 0 if as_text else False))
                    o += 1
        yield rows


def _load_postgres(url: str, stations: int, minutes: int) -> float:
    import psycopg

    with psycopg.connect(url, autocommit=True) as pg:
        pg.execute("DROP INDEX readings_datastream")
        started = time.monotonic()
        for rows in _hours(stations, minutes, as_text=False):
            with pg.cursor() as cur, cur.copy(
                    "COPY readings (station, batch_seq, ord, device, param, unit, time, "
                    "value_kind, value_int, value_float, value_text, status, unsynced) "
                    "FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        loaded = time.monotonic() - started
        pg.execute("CREATE INDEX readings_datastream ON readings "
                   "(station, device, param, time, batch_seq, ord)")
        pg.execute("VACUUM ANALYZE readings")
    return loaded


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def _whole_collection(get, plain, results) -> tuple[list[float], list[float], list[float]]:
    """The whole Observations collection, $top=100: page 1 and page 1,000 (OFFSET 99,900)."""
    g1, g1000, gskip, gsql1, gsql1000 = [], [], [], [], []
    link = "/v1.1/Observations?$top=100"
    t = time.perf_counter()
    first = get(link)
    g1.append(time.perf_counter() - t)
    for _page in range(998):
        link = get(link)["@iot.nextLink"]
    link = get(link)["@iot.nextLink"]
    for _ in range(10):
        t = time.perf_counter()
        get("/v1.1/Observations?$top=100")
        g1.append(time.perf_counter() - t)
        t = time.perf_counter()
        ids = [o["@iot.id"] for o in get(link)["value"]]
        g1000.append(time.perf_counter() - t)
        t = time.perf_counter()
        skipped = [o["@iot.id"] for o in get("/v1.1/Observations?$top=100&$skip=99900")["value"]]
        gskip.append(time.perf_counter() - t)
        assert ids == skipped
        for offset, out in ((0, gsql1), (99_900, gsql1000)):
            t = time.perf_counter()
            plain("SELECT station, batch_seq, ord FROM readings ORDER BY station, batch_seq, ord "
                  "LIMIT 100 OFFSET ?", (offset,))
            out.append(time.perf_counter() - t)
    del first
    results["all Observations, page 1 ($top=100)"] = (g1, gsql1)
    results["all Observations, page 1,000 via @iot.nextLink"] = (g1000, gsql1000)
    results["all Observations, page 1,000 via $skip=99900"] = (gskip, gsql1000)
    return g1, g1000, gskip


def _waits(probes: dict[str, RequestProbe]) -> None:
    """Where the API requests' wall time went: the request at p50, at p99 and the slowest."""
    print("\nwhat the requests waited on (ms; wait: runnable, waiting for a core, the server's "
          "threads and the client's; GC: time in cyclic GC passes, full passes; disk: KiB read "
          "from the disk)")
    n_max = max((len(p.samples) for p in probes.values()), default=0)
    rank = n_max - min(n_max - 1, round(0.99 * (n_max - 1)))
    print(f"(p99 of {n_max} samples is number {rank} from the slowest: a few more samples "
          "(--repeat) make it a percentile rather than one outlier)")
    print(f"{'query':50} {'n':>4} {'request':>8} {'wall':>7} {'CPU':>6} {'wait S':>7} "
          f"{'wait C':>7} {'GC':>6} {'full':>4} {'disk':>6}")
    for name, probe in probes.items():
        ranked = sorted(probe.samples, key=lambda x: x.wall_s)
        n = len(ranked)
        picks = [("p50", ranked[n // 2]), ("p99", ranked[min(n - 1, round(0.99 * (n - 1)))]),
                 ("max", ranked[-1])]
        for label, x in picks:
            print(f"{name[:50]:50} {n:4} {label:>8} {x.wall_s * 1e3:7.1f} {x.cpu_s * 1e3:6.1f} "
                  f"{x.server_wait_s * 1e3:7.1f} {x.client_wait_s * 1e3:7.1f} "
                  f"{x.gc_s * 1e3:6.1f} {x.gc_full:4} "
                  f"{x.disk_read / 1024:6.0f}")


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--observations", type=int, default=2_000_000)
    ap.add_argument("--stations", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=50)
    ap.add_argument("--db", type=Path, help="SQLite file (kept; loaded if it does not exist)")
    ap.add_argument("--only", default="latest,day,hour,page,deep,all",
                    help="which queries (comma-separated): latest,day,hour,page,deep,all")
    ap.add_argument("--postgres", action="store_true",
                    help="a private PostgreSQL server (initdb in a temporary directory)")
    args = ap.parse_args()
    minutes = max(4000, args.observations // (args.stations * CHANNELS))
    server_pg = None
    if args.postgres:
        from warehouse.cluster.postgres import PostgresServer

        server_pg = PostgresServer(Path(tempfile.mkdtemp())).start()
        url = server_pg.dsn
        fresh = True
    else:
        path = args.db or Path(tempfile.mkdtemp()) / "bench.db"
        url = f"sqlite:///{path}"
        fresh = not path.exists()
    if fresh:
        t = time.monotonic()
        loaded = load(url, args.stations, minutes)
        print(f"load: {args.stations * CHANNELS * minutes:,} observations in {loaded:.0f} s "
              f"(+ index and ANALYZE: {time.monotonic() - t - loaded:.0f} s)", flush=True)
    if args.postgres:
        import psycopg

        pg = psycopg.connect(url, autocommit=True)

        def plain(text: str, params: tuple) -> list:
            return pg.execute(text.replace("?", "%s"), params).fetchall()
    else:
        lite = sqlite3.connect(f"file:{path}?mode=ro", uri=True)

        def plain(text: str, params: tuple) -> list:
            return lite.execute(text, params).fetchall()
    n = plain("SELECT count(*) FROM readings", ())[0][0]
    backend = open_backend(url, timeout_s=30)
    server = serve(StaService(backend), "127.0.0.1", 0)
    port = server.server_address[1]
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    days = minutes // 1440

    def get(url: str) -> dict:
        parts = urlsplit(url)
        target = parts.path + ("?" + parts.query if parts.query else "")
        conn.request("GET", target)
        answer = conn.getresponse()
        body = answer.read()
        assert answer.status == 200, (answer.status, body[:300])
        return json.loads(body)

    def q(s: str) -> str:
        return quote(s, safe="=$(),;'")

    settle_heap()  # as `station-warehouse api` does once it listens
    load_start = os.getloadavg()
    results: dict[str, tuple[list[float], list[float]]] = {}
    probes: dict[str, RequestProbe] = {}  # what each API request waited on (server + client)
    only = set(args.only.split(","))

    def measure(name: str, key: str, api_fn, sql_fn) -> None:
        if key not in only:
            return
        a, b = [], []
        probe = probes[name] = RequestProbe()
        for _ in range(args.repeat):
            s, c = random.randrange(args.stations), random.randrange(CHANNELS)
            day = random.randrange(days)
            hour = random.randrange(days * 24)
            with probe.request():
                api_rows = api_fn(s, c, day, hour)
            a.append(probe.samples[-1].wall_s)
            t = time.perf_counter()
            sql_rows = sql_fn(s, c, day, hour)
            b.append(time.perf_counter() - t)
            assert api_rows == sql_rows, (name, api_rows, sql_rows)
        results[name] = (a, b)
        probe.close()

    def ds(s: int, c: int) -> str:
        return q(f"Datastreams('B-{s:03d}:aqm:P{c:02d}')")

    def latest_api(s, c, day, hour):
        doc = get(f"/v1.1/Things('B-{s:03d}')/Datastreams?$top=50&$expand=" + q(
            "Observations($top=1;$orderby=phenomenonTime desc)"))
        return len([o for d in doc["value"] for o in d["Observations"]])

    def latest_sql(s, c, day, hour):
        got = 0
        for k in range(CHANNELS):
            got += len(plain(
                "SELECT time, value_float FROM readings WHERE station = ? AND device = 'aqm' "
                "AND param = ? ORDER BY time DESC, batch_seq DESC, ord DESC LIMIT 1",
                (f"B-{s:03d}", f"P{k:02d}")))
        return got

    def span(day: int, hours: int, start_hour: int | None = None) -> tuple[str, str]:
        lo = T0 + (dt.timedelta(days=day) if start_hour is None else dt.timedelta(hours=start_hour))
        hi = lo + dt.timedelta(hours=hours)
        return iso(lo), iso(hi)

    def day_api(s, c, day, hour):
        lo, hi = span(day, 24)
        doc = get(f"/v1.1/{ds(s, c)}/Observations?$top=1000&$filter=" + q(
            f"phenomenonTime ge {lo} and phenomenonTime lt {hi}"))
        return len(doc["value"])

    def day_sql(s, c, day, hour):
        lo, hi = span(day, 24)
        return len(plain(
            "SELECT time, value_float, status FROM readings WHERE station = ? AND device = 'aqm' "
            "AND param = ? AND time >= ? AND time < ? ORDER BY time, batch_seq, ord LIMIT 1000",
            (f"B-{s:03d}", f"P{c:02d}", lo, hi)))

    def hour_api(s, c, day, hour):
        lo, hi = span(0, 1, hour)
        doc = get(f"/v1.1/Things('B-{s:03d}')/Datastreams?$top=50&$expand=" + q(
            f"Observations($filter=phenomenonTime ge {lo} and phenomenonTime lt {hi};$top=60)"))
        return sum(len(d["Observations"]) for d in doc["value"])

    def hour_sql(s, c, day, hour):
        lo, hi = span(0, 1, hour)
        got = 0
        for k in range(CHANNELS):
            got += len(plain(
                "SELECT time, value_float FROM readings WHERE station = ? AND device = 'aqm' "
                "AND param = ? AND time >= ? AND time < ? ORDER BY time, batch_seq, ord",
                (f"B-{s:03d}", f"P{k:02d}", lo, hi)))
        return got

    def page1_api(s, c, day, hour):
        return [o["@iot.id"] for o in get(f"/v1.1/{ds(s, c)}/Observations?$top=4")["value"]]

    def page_sql(offset: int):
        def run(s, c, day, hour):
            rows = plain(
                "SELECT station, batch_seq, ord FROM readings WHERE station = ? AND "
                "device = 'aqm' AND param = ? ORDER BY time, batch_seq, ord LIMIT 4 OFFSET ?",
                (f"B-{s:03d}", f"P{c:02d}", offset))
            return [f"{a}:{b}:{o}" for a, b, o in rows]
        return run

    measure("latest per Thing (50 Datastreams, $expand)", "latest", latest_api, latest_sql)
    measure("one Datastream's day (1,000 rows)", "day", day_api, day_sql)
    measure("a station's hour across 50 parameters ($expand)", "hour", hour_api, hour_sql)
    measure("page 1 ($top=4)", "page", page1_api, page_sql(0))
    # page 1,000 through @iot.nextLink: walk to page 999 first (not timed), then time page 1000
    deep_api, deep_sql, skip_api = [], [], []
    for _ in range(max(3, args.repeat // 10) if "deep" in only else 0):
        s, c = random.randrange(args.stations), random.randrange(CHANNELS)
        link = f"/v1.1/{ds(s, c)}/Observations?$top=4"
        for _page in range(999):
            link = get(link)["@iot.nextLink"]
        for _ in range(10):
            t = time.perf_counter()
            ids = [o["@iot.id"] for o in get(link)["value"]]
            deep_api.append(time.perf_counter() - t)
            t = time.perf_counter()
            want = page_sql(3996)(s, c, 0, 0)
            deep_sql.append(time.perf_counter() - t)
            assert ids == want
            t = time.perf_counter()
            get(f"/v1.1/{ds(s, c)}/Observations?$top=4&$skip=3996")
            skip_api.append(time.perf_counter() - t)
    if "deep" in only:
        results["page 1,000 via @iot.nextLink (keyset; SQL: OFFSET 3996)"] = (deep_api, deep_sql)
        results["page 1,000 via $skip=3996 (OFFSET)"] = (skip_api, deep_sql)
    g1, g1000, gskip = (_whole_collection(get, plain, results) if "all" in only
                        else ([], [], []))
    kind = "PostgreSQL" if args.postgres else "SQLite"
    print(f"\n{n:,} observations, {kind}, {args.repeat} runs each (ms; CPU: the process's CPU "
          "time per request, server and client)")
    print("load average at the start / end: "
          f"{' '.join(f'{x:.1f}' for x in load_start)} / "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    print(f"{'query':58} {'API p50':>8} {'API p99':>8} {'SQL p50':>8} {'SQL p99':>8} "
          f"{'CPU p50':>8} {'CPU p99':>8}")
    for name, (a, b) in results.items():
        cpus = [x.cpu_s for x in probes[name].samples] if name in probes else []
        cpu_text = f"{pct(cpus, 50) * 1e3:8.1f} {pct(cpus, 99) * 1e3:8.1f}" if cpus else ""
        print(f"{name:58} {pct(a, 50) * 1e3:8.1f} {pct(a, 99) * 1e3:8.1f} "
              f"{pct(b, 50) * 1e3:8.1f} {pct(b, 99) * 1e3:8.1f} {cpu_text}")
    _waits(probes)
    if "page" in only and "deep" in only:
        p1 = statistics.median(results["page 1 ($top=4)"][0])
        print(f"deep page / page 1 (p50): {statistics.median(deep_api) / p1:.2f}")
    if g1:
        print(f"all Observations: page 1,000 / page 1 (p50): "
              f"{statistics.median(g1000) / statistics.median(g1):.2f} (keyset), "
              f"{statistics.median(gskip) / statistics.median(g1):.2f} ($skip)")
    server.shutdown()
    if server_pg is not None:
        backend.close()
        pg.close()
        server_pg.stop()
        shutil.rmtree(server_pg.data.parent, ignore_errors=True)  # a 20 M load is 6 GiB
        shutil.rmtree(server_pg.directory, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
