"""What one request waited on, from the process's own counters (Linux): its CPU time, the time
its threads sat runnable waiting for a core (``/proc/self/task/*/schedstat``, field 2: the
main thread's, where the bench's client runs, apart from the other threads', the server's), the
cyclic GC's passes in it (``gc.callbacks``) and the bytes it made the kernel read from the disk
(``/proc/self/io`` ``read_bytes``: page-cache misses, readahead included). A slow request whose
CPU is small and whose core wait is large waited for a core, not for its own work.
"""

from __future__ import annotations

import gc
import os
import time
from dataclasses import dataclass, field
from typing import Any


def _core_wait_s() -> tuple[float, float]:
    """Seconds this process's threads have waited runnable for a core: (the main thread, the
    other threads summed)."""
    main = others = 0
    for tid in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{tid}/schedstat") as f:
                wait = int(f.read().split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError):
            continue  # a thread that ended meanwhile; or no schedstats in this kernel
        if int(tid) == os.getpid():
            main += wait
        else:
            others += wait
    return main / 1e9, others / 1e9


def _disk_read_bytes() -> int:
    try:
        with open("/proc/self/io") as f:
            for line in f:
                if line.startswith("read_bytes:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


@dataclass
class Sample:
    wall_s: float
    cpu_s: float
    client_wait_s: float  # the main thread's (the bench's client)
    server_wait_s: float  # the other threads' (the server's), summed
    gc_s: float  # wall time inside GC passes (a pass can itself wait for a core)
    gc_full: int  # generation-2 passes
    disk_read: int  # bytes


@dataclass
class RequestProbe:
    """Time a block: ``with probe.request(): …``; the samples collect in ``samples``."""

    samples: list[Sample] = field(default_factory=list)
    _gc_s: float = 0.0
    _gc_full: int = 0
    _gc_start: float = 0.0

    def __post_init__(self) -> None:
        gc.callbacks.append(self._on_gc)

    def close(self) -> None:
        gc.callbacks.remove(self._on_gc)

    def _on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._gc_start = time.perf_counter()
        else:
            self._gc_s += time.perf_counter() - self._gc_start
            self._gc_full += info["generation"] == 2

    def request(self) -> _Timed:
        return _Timed(self)


class _Timed:
    def __init__(self, probe: RequestProbe):
        self._probe = probe

    def __enter__(self) -> None:
        p = self._probe
        self._gc = (p._gc_s, p._gc_full)
        self._disk, self._wait = _disk_read_bytes(), _core_wait_s()
        self._cpu, self._wall = time.process_time(), time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        wall, cpu = time.perf_counter() - self._wall, time.process_time() - self._cpu
        p = self._probe
        main, others = _core_wait_s()
        p.samples.append(Sample(wall, cpu, main - self._wait[0], others - self._wait[1],
                                p._gc_s - self._gc[0], p._gc_full - self._gc[1],
                                _disk_read_bytes() - self._disk))
