"""The Modbus TCP link's reads over a real socket: answers split over several segments, or
arriving together with a stale one, are taken whole and in order, within the deadline."""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from drivers.modbus.link import TcpLink
from drivers.modbus.wire import BadAnswer, MbapCounter, mbap_transaction, parse_read, read_request

pytestmark = pytest.mark.timeout(20)
PDU = bytes([3, 4, 0, 1, 0, 2])  # two registers: 1, 2


def _answer(tid: int, unit: int, pdu: bytes = PDU) -> bytes:
    return struct.pack(">HHHB", tid, 0, len(pdu) + 1, unit) + pdu


@contextmanager
def _device(reply: Callable[[socket.socket, int, int], None]) -> Iterator[int]:
    """A one-connection 'device' calling ``reply(conn, tid, unit)`` for each request."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            while request := conn.recv(12):
                tid, _, _, unit = struct.unpack(">HHHB", request[:7])
                reply(conn, tid, unit)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield listener.getsockname()[1]
    finally:
        listener.close()


def _read_twice(port: int, timeout_s: float = 5.0) -> list[list[int] | int]:
    link = TcpLink("127.0.0.1", port)
    link.open(5)
    tids = MbapCounter()
    try:
        out = []
        for _ in range(2):
            request = read_request("holding", 0, 2, unit=7)
            answer = mbap_transaction(link, request, time.monotonic() + timeout_s, tids)
            out.append(parse_read(answer, "holding", 2))
        return out
    finally:
        link.close()


def test_an_answer_split_into_pieces_is_read_whole():
    def reply(conn: socket.socket, tid: int, unit: int) -> None:
        data = _answer(tid, unit)
        for piece in (data[:3], data[3:9], data[9:]):  # header split, body split
            conn.sendall(piece)
            time.sleep(0.02)  # separate segments

    with _device(reply) as port:
        assert _read_twice(port) == [[1, 2], [1, 2]]


def test_a_stale_answer_arriving_with_the_right_one_is_skipped_and_nothing_is_lost():
    def reply(conn: socket.socket, tid: int, unit: int) -> None:
        stale = _answer(tid - 1, unit, bytes([3, 4, 0, 9, 0, 9]))
        conn.sendall(stale + _answer(tid, unit))  # one segment holding two answers

    with _device(reply) as port:
        assert _read_twice(port) == [[1, 2], [1, 2]]


def test_two_answers_in_one_segment_are_taken_one_request_each():
    def reply(conn: socket.socket, tid: int, unit: int) -> None:
        if tid == 1:  # the first request gets its answer and, already, the second's
            conn.sendall(_answer(1, unit) + _answer(2, unit, bytes([3, 4, 0, 5, 0, 6])))

    with _device(reply) as port:
        assert _read_twice(port) == [[1, 2], [5, 6]]


def test_half_an_answer_is_told_incomplete_once_the_deadline_passes():
    def reply(conn: socket.socket, tid: int, unit: int) -> None:
        conn.sendall(_answer(tid, unit)[:5])  # then silence

    with _device(reply) as port:
        link = TcpLink("127.0.0.1", port)
        link.open(5)
        try:
            started = time.monotonic()
            with pytest.raises(BadAnswer, match=r"incomplete answer \(5 bytes\)"):
                request = read_request("holding", 0, 2, unit=7)
                mbap_transaction(link, request, started + 0.3, MbapCounter())
            assert time.monotonic() - started < 5  # bounded by the deadline, not blocking
        finally:
            link.close()
