"""Maintenance windows on a real buffer.db, without an agent process: which readings get status
01 (by the reading's time, overlapping windows, values untouched), the analyzer's own
calibration noted as windows, and the CLI's checks of what a technician types."""

from __future__ import annotations

import base64
import json
import sqlite3
from pathlib import Path

import pytest

from agent.buffer import Buffer
from agent.buffer.maintenance import ANALYZER, TECHNICIAN
from agent.cli.main import main
from agent.protocol.keys import load_private_key
from agent.protocol.signer import Signer
from agent.records.maintenance.record import MaintenanceRecord, parse_duration, record_body
from agent.records.maintenance.watch import MaintenanceWatch
from agent.seal.sealing import Sealer
from core.batch import SealedBatch
from core.errors import AgentError
from core.reading import Reading
from tests.helpers.station import analyzer_device, write_toml

T0 = 1_780_000_000_000
CHANNELS = {"gas": ["SO2", "NOx", "O2"], "dust": ["Dust"]}


class FixedClock:
    def __init__(self, now_ms: int) -> None:
        self.now = now_ms

    def now_ms(self) -> int:
        return self.now


def _poll(device: str, t: int, statuses: dict[str, str] | None = None) -> list[Reading]:
    statuses = statuses or {}
    return [
        Reading(device, p, "mg/Nm3", t, 10.0 + i, statuses.get(p, "00"))
        for i, p in enumerate(CHANNELS[device])
    ]


@pytest.fixture
def buffer(tmp_path):
    b = Buffer(tmp_path / "buffer.db")
    yield b
    b.close()


def _watch(buffer: Buffer, clock: FixedClock) -> MaintenanceWatch:
    watch = MaintenanceWatch(buffer.maintenance, clock, CHANNELS)
    watch.start()
    return watch


def test_a_window_gives_status_01_by_reading_time_and_leaves_values_and_other_devices(buffer):
    clock = FixedClock(T0)
    buffer.maintenance.open_window(
        TECHNICIAN, "gas", None, T0, until_ms=T0 + 60_000, technician="Lan", reason="span"
    )
    watch = _watch(buffer, clock)
    before, during, after = (
        _poll("gas", T0 - 1),
        _poll("gas", T0 + 30_000),
        _poll("gas", T0 + 60_000),
    )
    assert [r.status for r in watch.accept("gas", before)] == ["00"] * 3
    marked = watch.accept("gas", during)
    assert [r.status for r in marked] == ["01"] * 3
    assert [(r.param, r.value, r.time_ms) for r in marked] == [
        (r.param, r.value, r.time_ms) for r in during
    ]
    assert [r.status for r in watch.accept("gas", after)] == ["00"] * 3  # ends on time
    assert [r.status for r in watch.accept("dust", _poll("dust", T0 + 30_000))] == ["00"]


def test_a_fault_during_maintenance_stays_a_fault(buffer):
    buffer.maintenance.open_window(TECHNICIAN, "gas", None, T0, until_ms=T0 + 60_000)
    watch = _watch(buffer, FixedClock(T0))
    failed = Reading("gas", "SO2", "mg/Nm3", T0 + 1, None, "02", "timeout")
    assert watch.accept("gas", [failed]) == [failed]


def test_overlapping_windows_a_channel_is_01_while_any_window_covering_it_lasts(buffer):
    log = buffer.maintenance
    log.open_window(TECHNICIAN, "gas", ["SO2"], T0, until_ms=T0 + 60_000, technician="A")
    log.open_window(TECHNICIAN, "gas", ["SO2", "NOx"], T0 + 10_000, until_ms=T0 + 20_000)
    watch = _watch(buffer, FixedClock(T0))

    def statuses(t: int) -> dict[str, str]:
        return {r.param: r.status for r in watch.accept("gas", _poll("gas", t))}

    assert statuses(T0 + 5_000) == {"SO2": "01", "NOx": "00", "O2": "00"}
    assert statuses(T0 + 15_000) == {"SO2": "01", "NOx": "01", "O2": "00"}
    assert statuses(T0 + 25_000) == {"SO2": "01", "NOx": "00", "O2": "00"}
    assert statuses(T0 + 60_000) == {"SO2": "00", "NOx": "00", "O2": "00"}


def test_stop_ends_every_window_of_the_device_lasting_now(buffer):
    log = buffer.maintenance
    log.open_window(TECHNICIAN, "gas", ["SO2"], T0, until_ms=T0 + 60_000)
    log.open_window(TECHNICIAN, "gas", None, T0, until_ms=T0 + 60_000)
    log.open_window(TECHNICIAN, "dust", None, T0, until_ms=T0 + 60_000)
    stopped = log.stop("gas", T0 + 5_000, "Binh")
    assert [(w.device, w.stopped_ms, w.stopped_by) for w in stopped] == [
        ("gas", T0 + 5_000, "Binh")
    ] * 2
    assert all(w.event_at_end() == "stop" for w in stopped)
    watch = _watch(buffer, FixedClock(T0 + 5_000))
    assert {r.status for r in watch.accept("gas", _poll("gas", T0 + 5_000))} == {"00"}
    assert {r.status for r in watch.accept("dust", _poll("dust", T0 + 5_000))} == {"01"}


def test_the_analyzers_own_calibration_opens_and_closes_a_window_and_survives_a_restart(buffer):
    clock = FixedClock(T0)
    watch = _watch(buffer, clock)
    watch.accept("gas", _poll("gas", T0))
    watch.accept("gas", _poll("gas", T0 + 1_000, {"NOx": "01"}))
    watch.accept("gas", _poll("gas", T0 + 2_000, {"NOx": "01"}))
    failed = [
        Reading("gas", p, "mg/Nm3", T0 + 3_000, None, "02", "timeout") for p in CHANNELS["gas"]
    ]
    watch.accept("gas", failed)  # a failed read says nothing about the calibration

    restarted = _watch(buffer, clock)  # a new process: the open window is known
    restarted.accept("gas", _poll("gas", T0 + 4_000, {"NOx": "01"}))
    restarted.accept("gas", _poll("gas", T0 + 5_000))
    rows = (
        sqlite3.connect(buffer.path)
        .execute("SELECT source, device, channels, start_ms, stopped_ms FROM maintenance")
        .fetchall()
    )
    assert rows == [(ANALYZER, "gas", '["NOx"]', T0 + 1_000, T0 + 5_000)]


def test_records_are_sealed_once_start_then_end_in_order(buffer):
    clock = FixedClock(T0)
    sealed: list[dict] = []

    def seal(kind: str, body: dict) -> SealedBatch:
        assert kind == "maintenance"
        sealed.append(body)
        return SealedBatch(len(sealed), "jws", 0, clock.now)

    log = buffer.maintenance
    log.open_window(
        TECHNICIAN, "gas", ["SO2"], T0, until_ms=T0 + 10_000, technician="Lan", reason="zero"
    )
    watch = MaintenanceWatch(log, clock, CHANNELS, seal)
    watch.start()
    watch.refresh()
    clock.now = T0 + 10_000
    watch.refresh()
    watch.refresh()
    assert [(b["event"], b["window"], b["stopped"]) for b in sealed] == [
        ("start", 1, None),
        ("expire", 1, "2026-05-28T20:26:50.000Z"),
    ]
    assert (
        sealed[0]["from"] == "2026-05-28T20:26:40.000Z"
        and sealed[0]["until"] == sealed[1]["stopped"]
    )
    assert all(MaintenanceRecord.model_validate(b) for b in sealed)


def test_record_body_fields(buffer):
    window = buffer.maintenance.open_window(
        TECHNICIAN,
        "gas",
        ["SO2", "NOx"],
        T0,
        until_ms=T0 + 1_800_000,
        technician="Lan",
        reason="span calibration",
    )
    (stopped,) = buffer.maintenance.stop("gas", T0 + 60_000, "Binh")
    assert record_body(window, "start") == {
        "event": "start",
        "source": "technician",
        "window": window.id,
        "device": "gas",
        "channels": ["SO2", "NOx"],
        "technician": "Lan",
        "reason": "span calibration",
        "from": "2026-05-28T20:26:40.000Z",
        "until": "2026-05-28T20:56:40.000Z",
        "stopped": None,
        "stopped_by": None,
    }
    body = record_body(stopped, "stop")
    assert (body["stopped"], body["stopped_by"]) == ("2026-05-28T20:27:40.000Z", "Binh")


@pytest.mark.parametrize(
    ("text", "seconds"), [("30m", 1800), ("2h", 7200), ("1h30m", 5400), ("90s", 90), ("1d", 86400)]
)
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "30", "m", "30 x", "-5m", "0s", "8d", "1h30", "9" * 40 + "s"])
def test_bad_durations_are_refused_clearly(text):
    with pytest.raises(AgentError, match="--for"):
        parse_duration(text)


@pytest.fixture
def config_file(tmp_path, station_key):
    device = analyzer_device(1, name="gas")
    Buffer(tmp_path / "buffer.db").close()  # only run creates a buffer: as its first run left it
    return write_toml(
        tmp_path / "agent.toml",
        {
            "station": {"id": "S1"},
            "signing": {"key": str(station_key[0])},
            "buffer": {"path": str(tmp_path / "buffer.db")},
            "devices": [device],
            "transports": [
                {"type": "https", "base_url": "http://127.0.0.1:1", "allow_plain_http": True}
            ],
        },
    )


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["start", "nope", "--for", "1m"], "no device named 'nope' (devices: gas)"),
        (["start", "gas", "--channels", "SO2,XX", "--for", "1m"], "no channel 'XX'"),
        (["start", "gas", "--channels", "SO2,,NOx", "--for", "1m"], "--channels"),
        (["start", "gas", "--for", "ten minutes"], "--for 'ten minutes': expected a duration"),
        (["start", "gas", "--for", "1m", "--reason", "x" * 201], "--reason: 201 characters"),
        (["start", "gas", "--for", "1m", "--technician", " "], "--technician: must not be empty"),
        (["start", "gas", "--for", "1m", "--technician", "a\x1bb"], "control characters"),
        (["stop", "nope"], "no device named 'nope'"),
    ],
)
def test_the_cli_refuses_bad_input_with_a_clear_error(config_file, capsys, argv, message):
    action, *rest = argv
    for option in ("--reason", "--technician") if action == "start" else ():
        if option not in rest:
            rest += [option, "someone"]
    assert main(["maintenance", action, "--config", str(config_file), *rest]) == 1
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_the_cli_starts_lists_and_stops_a_window(config_file, capsys):
    args = ["--config", str(config_file)]
    assert (
        main(
            [
                "maintenance",
                "start",
                "gas",
                *args,
                "--channels",
                "SO2",
                "--for",
                "30m",
                "--reason",
                "span calibration",
                "--technician",
                "Lan",
            ]
        )
        == 0
    )
    assert "maintenance started: gas [SO2] until" in capsys.readouterr().out
    assert main(["maintenance", "list", *args]) == 0
    out = capsys.readouterr().out
    assert "in maintenance now:" in out and "by Lan — span calibration" in out
    assert main(["maintenance", "stop", "gas", *args, "--technician", "Binh"]) == 0
    assert "maintenance stopped: gas [SO2] stopped" in capsys.readouterr().out
    assert main(["maintenance", "list", *args]) == 0
    out = capsys.readouterr().out
    assert "no maintenance window lasting now" in out and "by Binh" in out


def test_status_shows_windows_lasting_now_and_those_ended_lately(config_file, capsys):
    args = ["--config", str(config_file)]
    common = ["--reason", "span calibration", "--technician", "Lan"]
    assert main(["maintenance", "start", "gas", *args, "--for", "30m", *common]) == 0
    assert (
        main(["maintenance", "start", "gas", *args, "--channels", "NOx", "--for", "2h", *common])
        == 0
    )
    assert main(["maintenance", "stop", "gas", *args, "--technician", "Binh"]) == 0
    assert (
        main(["maintenance", "start", "gas", *args, "--channels", "SO2,O2", "--for", "1h", *common])
        == 0
    )
    capsys.readouterr()
    main(["status", *args])
    out = capsys.readouterr().out
    assert "maintenance:\n  IN MAINTENANCE (status 01): gas [SO2,O2] until " in out
    assert "by Lan — span calibration (window 3)" in out
    assert out.count("  ended: gas [") == 2 and out.count(" by Binh, by Lan") == 2
    main(["status", "--json", *args])
    section = json.loads(capsys.readouterr().out)["maintenance"]
    (active,) = section["active"]
    assert (active["device"], active["channels"], active["technician"]) == (
        "gas",
        ["SO2", "O2"],
        "Lan",
    )
    assert active["until"].endswith("Z") and active["ended"] is None
    assert [(e["window"], e["ended_how"], e["stopped_by"]) for e in section["recently_ended"]] == [
        (1, "stop", "Binh"),
        (2, "stop", "Binh"),
    ]


class Killed(BaseException):
    """The process dies here."""


def test_a_crash_between_sealing_a_record_and_noting_it_does_not_seal_it_twice(buffer, station_key):
    clock = FixedClock(T0 + 20_000)
    sealer = Sealer(buffer, Signer(load_private_key(station_key[0])), "S1", clock, 1000)
    log = buffer.maintenance
    log.open_window(TECHNICIAN, "gas", None, T0, until_ms=T0 + 10_000, technician="L")

    def seal_then_die(kind: str, body: dict) -> SealedBatch:
        sealer.seal_record(kind, body)
        raise Killed  # before the window's row notes the record

    with pytest.raises(Killed):
        MaintenanceWatch(log, clock, CHANNELS, seal_then_die).start()
    for _ in range(2):  # the next start, and the one after: nothing sealed twice
        watch = MaintenanceWatch(log, clock, CHANNELS, sealer.seal_record)
        watch.start()
        watch.refresh()
    events = []
    for batch in buffer.pending("wh", limit=100):
        payload = json.loads(base64.urlsafe_b64decode(batch.jws.split(".")[1] + "=="))
        events.append((payload["seq"], payload["body"]["window"], payload["body"]["event"]))
    assert events == [(1, 1, "start"), (2, 1, "expire")]
    row = sqlite3.connect(buffer.path).execute("SELECT start_seq, end_seq FROM maintenance")
    assert row.fetchall() == [(1, 2)]


def test_the_protocol_docs_example_body_fits_the_model():
    text = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
    section = text.split("#### Record kind `maintenance`", 1)[1]
    example = section.split("```json\n", 1)[1].split("```", 1)[0]
    body = MaintenanceRecord.model_validate(json.loads(example))
    assert body.model_dump() == json.loads(example)


def test_stop_window_ends_that_window_only(config_file, capsys):
    args = ["--config", str(config_file)]
    common = ["--reason", "span calibration", "--technician", "Lan"]
    for channels in ("SO2", "NOx"):
        assert (
            main(
                [
                    "maintenance",
                    "start",
                    "gas",
                    *args,
                    "--channels",
                    channels,
                    "--for",
                    "1h",
                    *common,
                ]
            )
            == 0
        )
    capsys.readouterr()
    assert main(["maintenance", "stop", "gas", *args, "--window", "2", "--technician", "Binh"]) == 0
    assert "maintenance stopped: gas [NOx] stopped" in capsys.readouterr().out
    main(["status", "--json", *args])
    section = json.loads(capsys.readouterr().out)["maintenance"]
    assert [e["window"] for e in section["active"]] == [1]
    assert [(e["window"], e["stopped_by"]) for e in section["recently_ended"]] == [(2, "Binh")]
    # a window already ended, or not this device's: a clear error, nothing else ended
    for window in ("2", "9"):
        assert main(["maintenance", "stop", "gas", *args, "--window", window]) == 1
        err = capsys.readouterr().err
        assert f"gas has no technician's window {window} lasting now (lasting: 1;" in err
    with pytest.raises(SystemExit) as exit_:
        main(["maintenance", "stop", "gas", *args, "--window", "x"])
    assert exit_.value.code == 2
    assert "'x': expected a window number" in capsys.readouterr().err
    main(["status", "--json", *args])
    assert [e["window"] for e in json.loads(capsys.readouterr().out)["maintenance"]["active"]] == [
        1
    ]
