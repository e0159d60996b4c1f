"""The ways packets reach the agent: a TCP server (shared by every device on the same address),
a TCP client, a serial port. Each runs in its own threads and hands frames to ``Session``s.

A connection or port is read in short slices; bytes go through one ``Splitter`` per link; a
packet goes to the session whose MN it carries. Faults on a link are counted by the session
that last spoke on it (or the only one there is); others are logged. Bounded: at most
``MAX_CONNECTIONS`` connections per server, a silent connection is closed after
``idle_timeout_s``.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable

import serial

from drivers.hj212.framing import Frame, FrameFault, Splitter, show
from drivers.hj212.packet import PacketError, parse_segment
from drivers.hj212.session import Session, event, outsider_event

MAX_CONNECTIONS = 64
_SLICE_S = 0.2  # how often a reading thread looks up from the link (stop, idle, clock duty)


class Dispatcher:
    """MN -> session, for the packets of one listener or link."""

    def __init__(self) -> None:
        self.sessions: dict[str, Session] = {}
        self.unattributed = 0  # faults no session could be charged with

    def handle(self, item: Frame | FrameFault, link, owner: Session | None) -> Session | None:
        """Hand one item to its session; returns the session that now owns the link."""
        owner = owner or (next(iter(self.sessions.values())) if len(self.sessions) == 1 else None)
        if isinstance(item, FrameFault):
            if owner is not None:
                owner.on_fault(item, link.peer)
            else:
                self._unattributed(item.reason, item.detail, item.raw, link.peer)
            return owner
        try:
            packet = parse_segment(item.segment)
        except PacketError as exc:
            if owner is not None:
                owner.on_packet_fault("bad_packet", str(exc), item, link.peer)
            else:
                self._unattributed("bad_packet", str(exc), item.raw, link.peer)
            return owner
        session = self.sessions.get(packet.mn)
        if session is None:
            detail = f"MN {packet.mn[:64]!r} is not configured"
            if owner is not None:
                owner.on_packet_fault("unknown_mn", detail, item, link.peer)
            else:
                self._unattributed("unknown_mn", detail, item.raw, link.peer)
            return owner
        session.on_packet(item, packet, link)
        return session

    def _unattributed(self, reason: str, detail: str, raw: bytes, peer: str) -> None:
        self.unattributed += 1
        outsider_event(
            logging.WARNING,
            "hj212_fault",
            reason,
            peer=peer,
            reason=reason,
            detail=detail,
            raw=show(raw),
        )


class _SocketLink:
    def __init__(self, sock: socket.socket, peer: str) -> None:
        self.sock, self.peer = sock, peer
        self._lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._lock:
            self.sock.sendall(data)


def pump(
    read: Callable[[], bytes | None],
    link,
    dispatcher: Dispatcher,
    max_length: int,
    idle_timeout_s: float,
    stop: threading.Event,
) -> None:
    """Read a link until it ends (``read`` returns None), goes idle, or ``stop`` is set."""
    splitter = Splitter(max_length)
    owner: Session | None = None
    last_heard = time.monotonic()
    try:
        while not stop.is_set():
            data = read()
            if data is None:
                break
            now = time.monotonic()
            if data:
                last_heard = now
                for item in splitter.feed(data):
                    owner = dispatcher.handle(item, link, owner)
            elif now - last_heard > idle_timeout_s:
                outsider_event(
                    logging.INFO, "hj212_idle_closed", "", peer=link.peer, idle_s=idle_timeout_s
                )
                break
            if owner is not None:
                owner.tick()
    finally:
        for item in splitter.close():
            owner = dispatcher.handle(item, link, owner)
        for session in dispatcher.sessions.values():
            if session.link is link:
                session.link = None


def _socket_reader(sock: socket.socket) -> Callable[[], bytes | None]:
    sock.settimeout(_SLICE_S)

    def read() -> bytes | None:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            return b""
        except OSError:
            return None
        return data or None

    return read


class TcpServer:
    """Listens on one address; dataloggers connect, each packet goes to its MN's session."""

    _shared: dict[tuple[str, int], TcpServer] = {}
    _shared_lock = threading.Lock()

    @classmethod
    def acquire(cls, host: str, port: int, session: Session) -> TcpServer:
        """The server for (host, port), started on first use; ``session`` joins it."""
        with cls._shared_lock:
            server = cls._shared.get((host, port)) if port else None
            if server is None:  # port 0: a new server on a free port, shared from then on
                server = cls(host, port, session.config.max_length, session.config.idle_timeout_s)
                cls._shared[server.key] = server
            if session.config.mn in server.dispatcher.sessions:
                raise ValueError(f"two devices on {host}:{port} have MN {session.config.mn!r}")
            server.dispatcher.sessions[session.config.mn] = session
            return server

    def release(self, session: Session) -> None:
        """``session`` leaves; the last one out stops the server."""
        with self._shared_lock:
            self.dispatcher.sessions.pop(session.config.mn, None)
            if self.dispatcher.sessions:
                return
            if self._shared.get(self.key) is self:
                del self._shared[self.key]
        self.stop()

    def __init__(self, host: str, port: int, max_length: int, idle_timeout_s: float) -> None:
        self.dispatcher = Dispatcher()
        self.max_length, self.idle_timeout_s = max_length, idle_timeout_s
        self._sock = socket.create_server((host, port))
        self._sock.settimeout(_SLICE_S)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self.key = (host, self.address[1])
        self._stop = threading.Event()
        self._conns: dict[socket.socket, threading.Thread] = {}
        self._lock = threading.Lock()
        self.refused = 0
        self._thread = threading.Thread(target=self._accept, name=f"hj212-{port}", daemon=True)
        self._thread.start()

    def connections(self) -> int:
        with self._lock:
            return len(self._conns)

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                sock, addr = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                if len(self._conns) >= MAX_CONNECTIONS:
                    self.refused += 1
                    outsider_event(
                        logging.WARNING, "hj212_connection_refused", str(self.address[1]),
                        peer=f"{addr[0]}:{addr[1]}", refused=self.refused,
                    )  # fmt: skip
                    sock.close()
                    continue
                thread = threading.Thread(
                    target=self._serve, args=(sock, f"{addr[0]}:{addr[1]}"), daemon=True
                )
                self._conns[sock] = thread
            thread.start()

    def _serve(self, sock: socket.socket, peer: str) -> None:
        listen = str(self.address[1])
        outsider_event(logging.INFO, "hj212_connected", listen, peer=peer, listen=listen)
        try:
            link = _SocketLink(sock, peer)
            reader = _socket_reader(sock)
            pump(reader, link, self.dispatcher, self.max_length, self.idle_timeout_s, self._stop)
        finally:
            sock.close()
            with self._lock:
                self._conns.pop(sock, None)
            outsider_event(logging.INFO, "hj212_disconnected", listen, peer=peer)

    def stop(self) -> None:
        self._stop.set()
        self._sock.close()
        with self._lock:
            conns = list(self._conns.items())
        for sock, _ in conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        for _, thread in conns:
            thread.join(5)


class TcpClient:
    """Connects to a datalogger that listens; reconnects after ``reconnect_s``."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dispatcher = Dispatcher()
        self.dispatcher.sessions[session.config.mn] = session
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hj212-client", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        cfg = self.session.config
        peer = f"{cfg.host}:{cfg.port}"
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((cfg.host, cfg.port), timeout=5)
            except OSError as exc:
                event(logging.WARNING, "hj212_connect_failed", peer=peer, error=str(exc))
                self._stop.wait(cfg.reconnect_s)
                continue
            self._sock = sock
            event(logging.INFO, "hj212_connected", peer=peer)
            try:
                link = _SocketLink(sock, peer)
                self.session.on_link(link)
                pump(
                    _socket_reader(sock),
                    link,
                    self.dispatcher,
                    cfg.max_length,
                    cfg.idle_timeout_s,
                    self._stop,
                )
            finally:
                sock.close()
            event(logging.INFO, "hj212_disconnected", peer=peer)
            self._stop.wait(cfg.reconnect_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)


class _SerialLink:
    def __init__(self, port: serial.Serial, peer: str) -> None:
        self.port, self.peer = port, peer
        self._lock = threading.Lock()

    def send(self, data: bytes) -> None:
        with self._lock:
            try:
                self.port.write(data)
                self.port.flush()
            except serial.SerialException as exc:
                raise OSError(str(exc)) from None


class SerialPort:
    """Reads a serial line (RS-232/485); reopens it after ``reconnect_s`` when it fails."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.dispatcher = Dispatcher()
        self.dispatcher.sessions[session.config.mn] = session
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="hj212-serial", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        cfg = self.session.config
        while not self._stop.is_set():
            try:
                port = serial.Serial(
                    cfg.serial_port,
                    baudrate=cfg.baudrate,
                    bytesize=cfg.bytesize,
                    parity=cfg.parity,
                    stopbits=cfg.stopbits,
                    timeout=_SLICE_S,
                    exclusive=True,
                )
            except (serial.SerialException, OSError) as exc:
                event(logging.WARNING, "hj212_port_failed", port=cfg.serial_port, error=str(exc))
                self._stop.wait(cfg.reconnect_s)
                continue

            def read(port: serial.Serial = port) -> bytes | None:
                try:
                    return port.read(max(1, port.in_waiting))
                except (serial.SerialException, OSError):
                    return None

            try:
                link = _SerialLink(port, cfg.serial_port or "")
                self.session.on_link(link)
                # a serial line is never "idle closed": dataloggers may send once an hour
                pump(read, link, self.dispatcher, cfg.max_length, float("inf"), self._stop)
            finally:
                port.close()
            self._stop.wait(cfg.reconnect_s)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
