"""Whether ``[buffer] max_disk_mb`` can hold ``retention_days`` of what the configuration polls
(``config validate`` prints it, ``run`` logs it at start: one function, ``retention_warnings``).

A buffer at its cap refuses new readings: every poll is then recorded as a missed slot, and room
comes back only when acknowledged batches are ``retention_days`` old and pruned. A cap too small
for the station's rate is a station that stops recording, so it is said before it happens.

Each reading costs at least ``BYTES_PER_READING`` in the buffer: its row and its index entry
(measured on the 50 x 50 @ 0.2 s soak's buffer with SQLite's ``dbstat``: 29.9 + 20.6 bytes;
the sealed batches add 7 to 60+ bytes more, depending on how many readings share a batch). So
the days given are an upper bound: the warning never cries wolf.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config.model import Config

BYTES_PER_READING = 50
DAY_S = 86_400


def polled_rate(config: Config) -> float:
    """Readings per second the polled devices make (channels / poll interval); devices that
    push their readings (no channel list) count nothing."""
    return sum(
        len(getattr(d, "channels", ())) / d.poll_interval_s
        for d in config.devices
        if getattr(d, "channels", None)
    )


def retention_warnings(config: Config) -> list[str]:
    """One warning when ``max_disk_mb`` holds fewer than ``retention_days`` of the polled
    readings even at ``BYTES_PER_READING``; none otherwise."""
    rate = polled_rate(config)
    if rate <= 0:
        return []
    buffer = config.buffer
    days = buffer.max_disk_mb * 2**20 / (rate * BYTES_PER_READING * DAY_S)
    if days >= buffer.retention_days:
        return []
    need = rate * BYTES_PER_READING * DAY_S * buffer.retention_days / 2**20
    return [
        f"buffer.max_disk_mb = {buffer.max_disk_mb:g} holds at most {days:.1f} days of the "
        f"{rate:,.1f} readings/s the devices poll (at least {BYTES_PER_READING} bytes each); "
        f"retention_days = {buffer.retention_days} keeps every batch that long, so once the "
        f"buffer is full every poll is recorded as missed until old batches are pruned: set "
        f"max_disk_mb to at least {need:,.0f} (and have the disk for it), or poll less often"
    ]
