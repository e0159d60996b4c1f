"""A userspace link shaper: a TCP proxy that adds latency, caps bandwidth and cuts connections
mid-transfer, between the agent and a warehouse or broker (kernel netem is not available here).

    link = Link("127.0.0.1", warehouse_port, latency_s=0.15, rate_bps=1_000_000, cut_ratio=0.01)
    port = link.start()          # point the agent at 127.0.0.1:port
    link.cut_next(after_bytes=3000)  # the next connection dies after 3000 bytes upstream
    link.stop()

Latency is one way, each direction (a round trip costs ``2 * latency_s``); the bandwidth cap is
per direction, shared by all connections. ``cut_ratio`` is the share of upload bursts
(requests: data after 50 ms of silence) cut within their first 16 KiB. A cut resets both
sides (RST), as a dropped cellular link looks to a TCP peer once it gives up.
``python -m simulators.link`` runs one.
"""

from __future__ import annotations

import argparse
import queue
import random
import socket
import struct
import threading
import time

_CHUNK = 16 * 1024


class Link:
    """One listening port forwarding every connection to ``(host, port)``, shaped."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        latency_s: float = 0.0,
        rate_bps: float | None = None,
        cut_ratio: float = 0.0,
        seed: int = 0,
    ) -> None:
        self.target = (host, port)
        self.latency_s, self.rate_bps, self.cut_ratio = latency_s, rate_bps, cut_ratio
        self._random = random.Random(seed)
        self._cuts: list[tuple[int, bool]] = []  # next connections: (bytes upstream, as FIN)
        self._lock = threading.Lock()
        self.bytes_up = self.bytes_down = 0  # forwarded client -> server, server -> client
        self.connections = self.cut = 0
        self.open = self.peak_open = 0  # connections open now, and at most at once
        self.uploads: list[bytes] = []  # per connection, what the client sent (if recording)
        self.record = False
        self._server: socket.socket | None = None
        self._stopping = threading.Event()
        self._free_at = {True: 0.0, False: 0.0}  # per direction: when the link is free again

    def start(self) -> int:
        """Listen on a free loopback port; returns it."""
        self._server = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=self._accept, name="link-accept", daemon=True).start()
        return self._server.getsockname()[1]

    def _airtime(self, n: int, up: bool) -> float:
        """How long until ``n`` bytes have crossed the link in this direction, shared by every
        connection (the cap is the link's, not each connection's)."""
        with self._lock:
            now = time.monotonic()
            start = max(now, self._free_at[up])
            self._free_at[up] = start + n * 8 / (self.rate_bps or 1)
            return self._free_at[up] - now

    def cut_next(self, after_bytes: int, *, fin: bool = False) -> None:
        """Cut the next new connection once it has carried ``after_bytes`` upstream: reset both
        sides, or with ``fin`` end the upload cleanly (the server reads a short body) and reset
        the client."""
        with self._lock:
            self._cuts.append((after_bytes, fin))

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.close()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._stopping.is_set():
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _plan_cut(self) -> tuple[int, bool] | None:
        with self._lock:
            self.connections += 1
            self.open += 1
            self.peak_open = max(self.peak_open, self.open)
            if self._cuts:
                return self._cuts.pop(0)
        return None

    def _burst_cut(self) -> int | None:
        """With ``cut_ratio``, where in an upload burst (a request) to cut, if at all."""
        with self._lock:
            if self.cut_ratio and self._random.random() < self.cut_ratio:
                return self._random.randint(1, 16 * 1024)
        return None

    def _serve(self, client: socket.socket) -> None:
        try:
            server = socket.create_connection(self.target, timeout=10)
        except OSError:
            _reset(client)
            return
        server.settimeout(None)
        for s in (client, server):
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        conn = _Connection(self, client, server, self._plan_cut())
        conn.run()


class _Connection:
    """Two shaped pipes (up and down) of one proxied connection."""

    def __init__(
        self, link: Link, client: socket.socket, server: socket.socket, cut: tuple[int, bool] | None
    ) -> None:
        self.link, self.client, self.server = link, client, server
        self.cut_at, self.cut_fin = cut if cut is not None else (None, False)
        self.upload = bytearray()
        self.closed = threading.Event()
        self._cut_after_flush = False

    def run(self) -> None:
        for src, dst, up in ((self.client, self.server, True), (self.server, self.client, False)):
            pending: queue.Queue[tuple[float, bytes] | None] = queue.Queue()
            threading.Thread(target=self._read, args=(src, pending, up), daemon=True).start()
            threading.Thread(target=self._write, args=(dst, pending, up), daemon=True).start()

    def _read(self, src: socket.socket, pending: queue.Queue, up: bool) -> None:
        carried = 0
        last = 0.0
        while not self.closed.is_set():
            try:
                data = src.recv(_CHUNK)
            except OSError:
                data = b""
            now = time.monotonic()
            if up and data and self.cut_at is None and now - last > 0.05:  # a new request
                at = self.link._burst_cut()
                self.cut_at = None if at is None else carried + at
            last = now
            if up and self.cut_at is not None and carried + len(data) >= self.cut_at:
                data = data[: self.cut_at - carried]
                if self.link.record:
                    self.upload += data
                pending.put((time.monotonic() + self.link.latency_s, data))
                pending.put(None)
                self._cut_after_flush = True
                return
            carried += len(data)
            if not data:
                pending.put(None)
                return
            if up and self.link.record:
                self.upload += data
            pending.put((time.monotonic() + self.link.latency_s, data))

    def _write(self, dst: socket.socket, pending: queue.Queue, up: bool) -> None:
        while True:
            item = pending.get()
            if item is None:
                break
            due, data = item
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)  # the link's latency, not a test's synchronisation
            if self.link.rate_bps:
                time.sleep(self.link._airtime(len(data), up))
            try:
                dst.sendall(data)
            except OSError:
                break
            with self.link._lock:
                if up:
                    self.link.bytes_up += len(data)
                else:
                    self.link.bytes_down += len(data)
        if up and self._cut_after_flush:
            with self.link._lock:
                self.link.cut += 1
            if self.cut_fin:
                try:
                    self.server.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                _reset(self.client)
                self.closed.wait(30)  # until the server end closes: the down pipe finishes
            self._close(reset=True)
        elif not self.closed.is_set():
            self._close(reset=False)

    def _close(self, *, reset: bool) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        with self.link._lock:
            self.link.open -= 1
        if self.link.record:
            with self.link._lock:
                self.link.uploads.append(bytes(self.upload))
        for s in (self.client, self.server):
            if reset:
                _reset(s)
            else:
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()


def _reset(s: socket.socket) -> None:
    """Close with RST (SO_LINGER 0): the peer sees the connection reset, not a clean end."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listen", type=int, required=True, help="port to listen on (loopback)")
    parser.add_argument("--to", required=True, help="HOST:PORT to forward to")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="one way, each direction")
    parser.add_argument("--rate-kbps", type=float, default=None, help="cap per direction")
    parser.add_argument("--cut-ratio", type=float, default=0.0, help="share of connections cut")
    args = parser.parse_args(argv)
    host, _, port = args.to.rpartition(":")
    link = Link(
        host,
        int(port),
        latency_s=args.latency_ms / 1000,
        rate_bps=args.rate_kbps * 1000 if args.rate_kbps else None,
        cut_ratio=args.cut_ratio,
    )
    link._server = socket.create_server(("127.0.0.1", args.listen))
    threading.Thread(target=link._accept, daemon=True).start()
    print(f"link 127.0.0.1:{args.listen} -> {args.to}", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        link.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
