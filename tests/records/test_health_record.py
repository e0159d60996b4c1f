"""``health`` bodies and their timing, without an agent: the body is the status figures renamed,
small (1 KiB for 10 devices with long errors), refused by the model when forged or oversized;
the change records are debounced (a flapping device cannot flood the chain)."""

from __future__ import annotations

import json

import pytest

from agent.records.health import BUDGET_BYTES, HealthRecords, body
from core.batch import SealedBatch
from core.records import RecordError, check_body

DIGEST = "ab" * 32


def _figures(n: int = 10, failing: int = 10, error: str = "x" * 600, state: str = "FAULT"):
    """Status figures (``status --json``) of ``n`` devices, ``failing`` of them failing."""
    devices = []
    for i in range(n):
        bad = i < failing
        word = (state if i % 2 else "partly failing: SO2, NOx") if bad else "ok"
        devices.append(
            {
                "name": f"analyzer-{i:02d}",
                "configured": True,
                "state": word,
                "polls": 10,
                "failing_channels": ["SO2", "NOx"] if bad else [],
                "last_error": f"device analyzer-{i:02d}: {error}" if bad else None,
                "not_listening": None,
            }
        )
    return {
        "devices": devices,
        "maintenance": {"active": [], "recently_ended": []},
        "transports": [
            {
                "name": "warehouse",
                "backlog_batches": 12,
                "oldest_unacked_reading_age_s": 61.5,
                "failing_since_ms": 1,
                "quarantined_count": 0,
            }
        ],
        "clock": {"synchronized": True, "max_error_s": 0.012},
        "buffer_bytes": 123_456_789,
        "free_bytes": 98_765_432_100,
    }


def _config():
    return {"digest": DIGEST, "source": "local", "remote_version": None, "pinned": False}


def _size(b: dict) -> int:
    return len(json.dumps(b, separators=(",", ":"), ensure_ascii=False).encode())


def test_ten_devices_with_failing_channels_and_long_errors_fit_in_1_kib() -> None:
    made = body(_figures(10, 10), "interval", 3, "0.1.0", _config())
    assert _size(made) <= BUDGET_BYTES == 1024
    assert check_body("health", made) == made
    assert [d["state"] for d in made["devices"]] == ["partial", "fault"] * 5
    partial = [d for d in made["devices"] if d["state"] == "partial"]
    assert all(d["failing_channels"] == ["SO2", "NOx"] for d in partial)
    assert all("failing_channels" not in d for d in made["devices"] if d["state"] == "fault")


def test_errors_are_kept_whole_when_they_fit() -> None:
    made = body(_figures(10, 2, error="timeout"), "change", 0, "0.1.0", _config())
    assert made["devices"][0]["last_error"] == "device analyzer-00: timeout"
    assert made["devices"][2] == {"name": "analyzer-02", "state": "ok"}
    assert made["transports"] == [
        {"name": "warehouse", "backlog": 12, "oldest_unacked_s": 61.5, "state": "failing"}
    ]
    assert made["clock"] == {"synced": True, "offset_ms": 12.0}


def test_maintenance_and_never_polled_devices() -> None:
    figures = _figures(3, 0)
    figures["maintenance"]["active"] = [{"device": "analyzer-01"}]
    figures["devices"][2] |= {"state": "never polled", "polls": 0}
    made = body(figures, "interval", 0, "0.1.0", _config())
    assert [d["state"] for d in made["devices"]] == ["ok", "maintenance", "never_polled"]


def _good() -> dict:
    return body(_figures(2, 1, error="e"), "interval", 0, "0.1.0", _config())


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda b: b.update(extra=1), "extra"),
        (lambda b: b.update(reason="because"), "reason"),
        (lambda b: b["devices"][0].update(state="broken"), "devices.0.state"),
        (lambda b: b["devices"][0].update(last_error="e" * 201), "devices.0.last_error"),
        (lambda b: b["transports"][0].update(backlog=-1), "transports.0.backlog"),
        (lambda b: b["transports"][0].update(backlog="12"), "transports.0.backlog"),
        (lambda b: b["clock"].update(synced="yes"), "clock.synced"),
        (lambda b: b["config"].update(digest="zz"), "config.digest"),
        (lambda b: b.update(missed_polls=-3), "missed_polls"),
        (lambda b: b.pop("agent_version"), "agent_version"),
        (
            lambda b: b.update(
                devices=[
                    {"name": f"d{i:03d}", "state": "fault", "failing_channels": ["c" * 60] * 8}
                    | {"last_error": "e" * 200}
                    for i in range(80)
                ]
            ),
            r"\(top level\)",  # every field within its bound, the whole over 32 KiB
        ),
    ],
)
def test_a_forged_or_oversized_body_is_refused(change, where) -> None:
    bad = _good()
    change(bad)
    with pytest.raises(RecordError, match=rf"record health: body\.{where}"):
        check_body("health", bad)


class _Fake:
    """The scheduler's inputs: a clock advanced by hand, status figures whose device state the
    test sets, a sink that counts what is sealed."""

    def __init__(self) -> None:
        self.now = 0.0
        self.state = "ok"
        self.stored = 0
        self.missed = 0  # the poller's missed slots since start
        self.failing_since: int | None = None  # the transport's
        self.sealed: list[dict] = []

    def figures(self) -> dict:
        f = _figures(1, 1 if self.state != "ok" else 0, state="FAULT")
        f["devices"][0]["state"] = self.state
        f["transports"][0]["failing_since_ms"] = self.failing_since
        return f

    def seal(self, kind: str, made: dict) -> SealedBatch:
        self.sealed.append(made)
        return SealedBatch(len(self.sealed), "t", 0, 0)

    def records(self, interval_s: float = 300, gap_s: float = 10) -> HealthRecords:
        return HealthRecords(
            self.figures,
            self.figures,
            self.seal,
            lambda: (interval_s, gap_s),
            lambda: self.missed,
            lambda: self.stored,
            lambda: self.now,
            "0.1.0",
            _config,
        )


def test_a_flapping_device_seals_at_most_one_change_record_per_gap() -> None:
    fake = _Fake()
    records = fake.records(gap_s=10)
    for second in range(61):  # the device flips every poll (each second) for a minute
        fake.now, fake.stored = float(second), second
        fake.state = "FAULT" if second % 2 else "ok"
        records.run()
    reasons = [b["reason"] for b in fake.sealed]
    assert reasons == ["change"] * len(reasons) and 2 <= len(reasons) <= 6, reasons
    fake.state = "ok"  # it settles: that state is sealed once the gap allows, then nothing
    for second in range(61, 100):
        fake.now, fake.stored = float(second), second
        records.run()
    assert fake.sealed[-1]["devices"][0]["state"] == "ok"
    settled = len(fake.sealed)
    for second in range(100, 200):
        fake.now, fake.stored = float(second), second
        records.run()
    assert len(fake.sealed) == settled


def test_an_interval_record_every_interval() -> None:
    fake = _Fake()
    records = fake.records(interval_s=30)
    for second in range(0, 125):
        fake.now = float(second)
        records.run()
    assert [b["reason"] for b in fake.sealed] == ["interval"] * 4  # no change meanwhile


def test_missed_polls_are_counted_since_the_previous_record() -> None:
    fake = _Fake()
    records = fake.records(interval_s=30)
    for second, missed in ((0, 0), (10, 4), (30, 5), (45, 5), (60, 12), (90, 12)):
        fake.now, fake.missed = float(second), missed
        records.run()
    assert [b["missed_polls"] for b in fake.sealed] == [5, 7, 0]  # at 30, 60, 90 s


def test_a_transport_failing_and_recovering_each_seal_a_change_record() -> None:
    fake = _Fake()
    records = fake.records(gap_s=1)
    seen = []
    for second, failing in ((0, None), (1, None), (2, 1_000), (5, 1_000), (8, None), (11, None)):
        fake.now, fake.stored, fake.failing_since = float(second), second, failing
        records.run()
        seen.append(len(fake.sealed))
    assert [b["reason"] for b in fake.sealed] == ["change", "change"]
    assert [b["transports"][0].get("state", "ok") for b in fake.sealed] == ["failing", "ok"]
    assert seen == [0, 0, 1, 1, 2, 2]  # sealed when it changed, not before, not again
    assert all(b["devices"][0]["state"] == "ok" for b in fake.sealed)  # the devices did not
