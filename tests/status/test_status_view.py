"""``status`` reads two sources written at different paces: the health file (rewritten by the
agent each second) and the buffer (an acknowledgement recorded as it comes). A transport the
health file last saw offline, but that the buffer shows delivering since, is not failing."""

from __future__ import annotations

from agent.status.figures import EXIT_OK, EXIT_TRANSPORT_FAILING, exit_code
from agent.status.sections.transports import failing_since

NOW = 1_800_000_000_000


def _status(written_ms: int, failing_since_ms: int | None, acked_ms: int | None) -> dict:
    since = failing_since(failing_since_ms, acked_ms, written_ms)
    return {
        "agent": {"running": True, "updated_at_ms": written_ms},
        "transports": [{"name": "broker", "last_acked_at_ms": acked_ms, "failing_since_ms": since}],
    }


def test_an_ack_recorded_after_the_health_file_was_written_means_not_failing():
    # Started offline (the first health write), then connected and acknowledged a batch
    # before the next health write: status must not say FAILING.
    assert failing_since(NOW - 1000, NOW - 100, NOW - 900) is None
    assert (
        exit_code(_status(NOW - 900, NOW - 1000, NOW - 100), fail_after_s=0, now_ms=NOW) == EXIT_OK
    )


def test_an_ack_older_than_the_health_file_does_not_hide_a_failure():
    assert failing_since(NOW - 60_000, NOW - 120_000, NOW - 100) == NOW - 60_000
    stale = _status(NOW - 100, NOW - 60_000, NOW - 120_000)
    assert exit_code(stale, fail_after_s=30, now_ms=NOW) == EXIT_TRANSPORT_FAILING
    assert failing_since(NOW - 5_000, None, NOW - 100) == NOW - 5_000
