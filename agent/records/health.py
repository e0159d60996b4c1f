"""The agent's side of record kind ``health`` (model: ``core.record_kinds.health``).

The body is made from the figures ``station-agent status`` shows (``agent.status.sections``,
merged as ``status --json`` gives them), never computed a second way: ``body`` only picks and
renames. ``HealthRecords.run`` (once a second, ``agent.runtime.health_records``) seals one every
``[health] interval_s`` and one when a device's or a transport's state changes, at most one such
change record per ``[health] change_gap_s`` (a change within the gap is sealed when it ends), all
through ``RecordSink.request_record``: the readings stored before it are sealed first.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Mapping
from typing import Any

from agent.support.logs import event
from core.batch import SealedBatch
from core.errors import StorageError
from core.record_kinds.health import KIND, MAX_CHANNELS, MAX_ERROR, HealthRecord
from core.records import RecordError

log = logging.getLogger("agent")
BUDGET_BYTES = 1024  # device errors are shortened until the body fits, if they can make it fit
MIN_ERROR = 16  # ... but not below this many characters (then they are left out: null)
CHECK_EVERY_S = 5.0  # the states are looked at when the poller's state moves, and this often


def _device_state(d: Mapping[str, Any], in_maintenance: bool) -> str:
    """The status words (``ok``, ``FAULT``, ``partly failing: …``, ``never polled``) as the
    record's; a device a maintenance window covers now is ``maintenance``, whatever it reads."""
    if d.get("polls", 0) == 0 and d["state"] == "never polled":
        return "never_polled"
    if in_maintenance:
        return "maintenance"
    if d["state"] == "ok":
        return "ok"
    return "fault" if d["state"] == "FAULT" else "partial"


def devices(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The configured devices, from the ``devices`` and ``maintenance`` sections of status."""
    covered = {w["device"] for w in (figures.get("maintenance") or {}).get("active", [])}
    out = []
    for d in figures["devices"]:
        if not d.get("configured", True):
            continue  # only in the buffer, no longer polled
        state = _device_state(d, d["name"] in covered)
        error = d.get("not_listening") or d.get("last_error")
        out.append(
            {
                "name": d["name"],
                "state": state,
                # fault: every channel failed (status names them all); left out, as for ok
                "failing_channels": (
                    [] if state != "partial" else list(d["failing_channels"])[:MAX_CHANNELS]
                ),
                "last_error": None if state == "ok" or not error else error[:MAX_ERROR],
            }
        )
    return out


def transports(figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Each transport from the ``transports`` section: batch transports owe batches, a
    period-file transport (TT10) owes files."""
    out = []
    for t in figures["transports"]:
        failing = t.get("failing_since_ms") is not None or (
            t.get("status_module") is not None and t.get("last_error") is not None
        )
        state = "failing" if failing else "quarantined" if t.get("quarantined_count") else "ok"
        out.append(
            {
                "name": t["name"],
                "backlog": int(t.get("backlog_batches", t.get("backlog_files", 0)) or 0),
                "oldest_unacked_s": t.get("oldest_unacked_reading_age_s"),
                "state": state,
            }
        )
    return out


def signature(figures: Mapping[str, Any]) -> Hashable:
    """What a change record follows: each device's state and failing channels, whether each
    transport is failing (not its backlog, which moves with every batch)."""
    return (
        tuple((d["name"], d["state"], tuple(d["failing_channels"])) for d in devices(figures)),
        tuple((t["name"], t.get("failing_since_ms") is not None) for t in figures["transports"]),
    )


def _unpolled(sig: Hashable) -> bool:
    """No device polled yet (just started): no state to report."""
    devices_part = sig[0] if isinstance(sig, tuple) else ()
    return bool(devices_part) and all(state == "never_polled" for _n, state, _c in devices_part)


def body(
    figures: Mapping[str, Any],
    reason: str,
    missed_polls: int,
    agent_version: str,
    config: Mapping[str, Any],
) -> dict[str, Any]:
    """The body of a health record from the merged status figures (``status --json``), checked
    by the kind's model; device errors shortened so that it fits ``BUDGET_BYTES`` if it can."""
    clock = figures["clock"]
    error_s = clock.get("max_error_s")
    entries = devices(figures)
    out: dict[str, Any] = {
        "devices": entries,
        "transports": transports(figures),
        "clock": {
            "synced": clock.get("synchronized") is True,
            "offset_ms": None if error_s is None else round(error_s * 1000, 3),
        },
        "buffer": {"bytes": figures["buffer_bytes"], "free_bytes": figures["free_bytes"]},
        "missed_polls": missed_polls,
        "agent_version": agent_version,
        "config": _config(config),
        "reason": reason,
    }
    _fit(entries, out)
    return HealthRecord.model_validate(out).model_dump(mode="json")


def _config(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config_state`` as the record states it: the file's digest only when it differs."""
    shown = dict(config)
    if shown.get("file_digest") in (None, shown.get("digest")):
        shown.pop("file_digest", None)
    return shown


def _size(out: Mapping[str, Any]) -> int:
    """Bytes of the body as sealed (compact JSON, empty device fields left out)."""
    return len(HealthRecord.model_validate(out).model_dump_json().encode())


def _fit(entries: list[dict[str, Any]], out: Mapping[str, Any]) -> None:
    """Shorten the devices' errors (all to one length, not below ``MIN_ERROR``) until ``out``
    fits the budget; if it still does not, leave errors out (null), the last devices' first."""
    with_error = [e for e in entries if e["last_error"]]
    over = _size(out) - BUDGET_BYTES
    if over <= 0 or not with_error:
        return
    longest = max(len(e["last_error"]) for e in with_error)
    while over > 0 and longest > MIN_ERROR:
        longest = max(MIN_ERROR, longest - max(1, over // len(with_error)))
        for e in with_error:
            e["last_error"] = e["last_error"][:longest]
        over = _size(out) - BUDGET_BYTES
    for e in reversed(with_error):  # still over: the last devices' errors are left out
        if over <= 0:
            break
        e["last_error"] = None
        over = _size(out) - BUDGET_BYTES


class HealthRecords:
    """When to seal a health record, and sealing it (see the module docstring)."""

    def __init__(
        self,
        figures: Callable[[], dict[str, Any]],
        states: Callable[[], dict[str, Any]],
        seal: Callable[[str, dict[str, Any]], SealedBatch],
        timing: Callable[[], tuple[float, float]],
        missed_polls: Callable[[], int],
        state_moved: Callable[[], int],
        clock: Callable[[], float],
        agent_version: str,
        config: Callable[[], Mapping[str, Any]],
    ) -> None:
        """``figures()``: the merged status figures now; ``states()``: the part of them a
        change follows (devices, maintenance, transports' failing), cheaper; ``seal(kind,
        body)``: the agent's ``request_record``; ``timing()``: (interval_s, change_gap_s);
        ``missed_polls()``: the poller's counter since start; ``state_moved()``: a number that
        moves when a device's state may have (``Poller.states.version``: looked at then);
        ``clock()``: monotonic seconds; ``config()``: ``agent.status.config_state`` of the
        configuration in force."""
        self._figures, self._states, self._seal, self._timing = figures, states, seal, timing
        self._missed, self._moved, self._clock = missed_polls, state_moved, clock
        self._version, self._config = agent_version, config
        start = clock()
        self._next_interval = start + timing()[0]
        self._last_change = float("-inf")  # when the last change record was sealed
        self._last_look = float("-inf")
        self._moved_seen = -1
        self._sig: Hashable | None = None  # the states of the last record or look
        self._pending = False  # a change not sealed yet (within the gap)
        self._missed_base = 0
        self.sealed: list[SealedBatch] = []  # the last few records sealed (for tests, status)

    @property
    def watching(self) -> bool:
        """The states at start are known: a change from them is sealed from now on."""
        return self._sig is not None

    def run(self) -> None:
        """Seal what is due: the interval record, or a change record the gap allows."""
        now = self._clock()
        interval_s, gap_s = self._timing()
        self._next_interval = min(self._next_interval, now + interval_s)  # a shortened interval
        if now >= self._next_interval:
            if self._seal_one("interval"):  # it states the states now: no change is pending
                self._next_interval, self._pending = now + interval_s, False
            return
        moved = self._moved()
        if moved != self._moved_seen or now - self._last_look >= CHECK_EVERY_S:
            self._moved_seen, self._last_look = moved, now
            sig = signature(self._states())
            if self._sig is None:  # the states the agent started in (once polled): no change
                self._sig = None if _unpolled(sig) else sig
            elif sig != self._sig:
                self._sig, self._pending = sig, True
        if self._pending and now - self._last_change >= gap_s and self._seal_one("change"):
            self._last_change, self._pending = now, False

    def _seal_one(self, reason: str) -> bool:
        """Gather, build and seal one record; False (tried again later) if it could not."""
        figures = self._figures()
        missed = self._missed()
        try:
            made = body(
                figures,
                reason,
                max(0, missed - self._missed_base),
                self._version,
                self._config(),
            )
            record = self._seal(KIND, made)
        except (StorageError, RecordError) as exc:
            event(log, logging.WARNING, "health_record_failed", reason=reason, error=str(exc))
            return False
        self._missed_base = missed
        self._sig = signature(figures)
        self.sealed = [*self.sealed[-9:], record]
        return True
