"""Is the system clock synchronized? The kernel's answer, as ``timedatectl`` gives it.

systemd (``ntp_synced()``, behind timedatectl's "System clock synchronized") asks the kernel
with ``adjtimex(2)`` in read-only mode and calls the clock synchronized when the kernel's
maximum error estimate is below 16 s (``maxerror < 16000000`` µs); a time daemon (chrony,
systemd-timesyncd, ntpd) keeps it low while it disciplines the clock, and the kernel lets it
grow by 500 ppm once nobody does. A station PC without a battery-backed clock that boots before
the network is up stamps its first readings with a clock that is not synchronized: ``status``
says so, and such readings are flagged in the buffer and in the signed payload (v3
``unsynced``; ``agent.poll.poller``).
"""

from __future__ import annotations

import ctypes
import functools
import sys

MAX_ERROR_US = 16_000_000  # the kernel's ceiling for maxerror: "no idea"


class _Timex(ctypes.Structure):
    """``struct timex`` (linux/timex.h); ctypes lays the padding out as the C compiler does."""

    _fields_ = [
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time_sec", ctypes.c_long),
        ("time_usec", ctypes.c_long),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
        ("_slack", ctypes.c_byte * 64),  # room for any later growth of the kernel's struct
    ]


def read_timex() -> _Timex | None:
    """The kernel's clock state from ``adjtimex`` in read-only mode (None: cannot ask)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = _libc()
    timex = _Timex()  # modes = 0: read only, nothing is changed
    if libc.adjtimex(ctypes.byref(timex)) < 0:
        return None
    return timex


@functools.cache
def _libc() -> ctypes.CDLL:
    # The process's own symbols hold the C library's (Python links it): no search, where
    # ``ctypes.util.find_library`` runs ldconfig in a child process (~20 ms for `status`).
    own = ctypes.CDLL(None, use_errno=True)
    if hasattr(own, "adjtimex"):
        return own
    from ctypes.util import find_library  # with subprocess, tempfile, shutil: only if needed

    return ctypes.CDLL(find_library("c"), use_errno=True)  # found once: it forks


def max_error_us() -> int | None:
    """The kernel's maximum error estimate of the system clock in µs (None: cannot ask)."""
    timex = read_timex()
    return None if timex is None else int(timex.maxerror)


def clock_synchronized() -> bool | None:
    """True when the system clock is synchronized (as ``timedatectl`` says), None if unknown."""
    error = max_error_us()
    return None if error is None else error < MAX_ERROR_US
