"""The Modbus device driver shared by every line: plan, request with retries, decode, status.

``ModbusDriver(config, endpoint)`` polls one device (unit id) on a shared bus
(``drivers/modbus/bus.py``). It implements ``Driver`` and ``Probeable``. What a poll does:

* the request plan (``drivers/modbus/plan.py``) is sent in order, each request encoded,
  framed and its answer decoded by pymodbus (``drivers/modbus/wire.py``); each request is tried
  ``retries + 1`` times when it gets no answer or a garbled one. A device that stayed silent in
  its last poll is tried once per request until it answers again, so a dead device costs the
  bus one timeout per poll.
* RTU frames carry no transaction id: an answer from another unit id (a late answer to an
  earlier request) is skipped, and input pending before a request is discarded; a late answer
  arriving during a retry of the same request is taken, being that device's answer to it.
* no answer after every try, or a link that cannot be opened, raises ``DeviceError`` naming the
  device, the unit, the port and what to check; the poller turns it into fault readings. If the
  device stops answering part-way through a poll, the values already read are kept and the
  channels (or statuses) not read get status "02" with that error.
* a Modbus exception to a merged request makes each of its channels be read alone, so one bad
  address faults only its channel; after exception 2 (illegal data address) the merged request
  is not tried again, and a warning (``modbus_merged_read_refused``, also ``advice()`` for
  ``probe``) names the refused range and the ``forbidden`` entry to add
  (``drivers/modbus/advice.py``).

What the station page and ``/metrics`` see (``drivers.base.WireCounters``): ``requests`` counts
every try and ``errors`` each failed one by kind (``timeout``, ``crc``, ``incomplete``,
``unit_mismatch``, ``function_mismatch``, ``malformed``, ``link_down``, ``exception_N``); ``raw``
keeps, per read block, the words of its last answer (the list the answer was decoded into, no
copy), dropped when that block fails. ``raw_registers()`` slices them per channel on demand.
"""

from __future__ import annotations

import logging

from core.errors import DeviceError
from core.reading import FAULT, MEASURING, Reading
from drivers.base import Channel, ProbeRow
from drivers.modbus.advice import byte_order_notes, refused_merge
from drivers.modbus.bus import Bus, Endpoint, attach, detach
from drivers.modbus.channel_status import Results, decoder, status_of, status_source
from drivers.modbus.config import ModbusChannel, ModbusDeviceConfig
from drivers.modbus.plan import Request, Span, plan
from drivers.modbus.wire import BadAnswer, LinkDown, LinkError, NoAnswer, parse_read, read_request

EXCEPTION_NAMES = {
    1: "illegal function",
    2: "illegal data address",
    3: "illegal data value",
    4: "server device failure",
    5: "acknowledge",
    6: "server device busy",
    8: "memory parity error",
    10: "gateway path unavailable",
    11: "gateway target device failed to respond",
}
ILLEGAL_DATA_ADDRESS = 2
log = logging.getLogger("drivers.modbus")


def exception_text(code: int, span: Span) -> str:
    """E.g. 'Modbus exception 2 (illegal data address) reading holding register 2'."""
    name = EXCEPTION_NAMES.get(code, "unknown exception")
    return f"Modbus exception {code} ({name}) reading {span.function} register {span.address}"


def raw_words(spans: tuple[tuple[str, Span | None], ...], results: Results) -> str:
    """The words each labelled span answered (``0x0041 0x2000; status 0x0000``; bits as 0/1)."""
    parts = []
    for label, span in spans:
        got = results.get(span) if span is not None else None
        if isinstance(got, list):
            bits = span is not None and span.is_bits
            parts.append(label + " ".join(str(v) if bits else f"0x{v:04X}" for v in got))
    return "; ".join(parts)


class ModbusDriver:
    """Polls one Modbus device on its bus; one poller thread per device (the bus serializes)."""

    def __init__(self, config: ModbusDeviceConfig, endpoint: Endpoint) -> None:
        self.config, self.endpoint = config, endpoint
        self.name = config.name
        self.channels = [Channel(c.param, c.unit) for c in config.channels]
        self.where = f"device {config.name!r} ({endpoint.where(config.unit)})"
        self._values = {c.param: Span(c.function, c.register, c.count) for c in config.channels}
        self._statuses = {c.param: status_source(config, c) for c in config.channels}
        self._decoders = {c.param: decoder(c) for c in config.channels}  # made once
        # what a poll needs per channel, in channel order, looked up once here rather than
        # four times per reading
        self._plan = [
            (
                c.param,
                c.unit,
                self._values[c.param],
                self._decoders[c.param],
                self._statuses[c.param],
            )
            for c in config.channels
        ]
        spans = set(self._values.values())
        spans.update(s.span for s in self._statuses.values() if s is not None)
        forbidden = [Span(f.function, f.first, f.last - f.first + 1) for f in config.forbidden]
        self._requests = plan(spans, config.max_gap, forbidden)
        self._split: dict[Span, str] = {}  # merged requests refused with exception 2: advice
        self._silent = False  # the last request got no answer after every try
        self.requests = 0  # tries sent (the page and /metrics read these; see the docstring)
        self.errors: dict[str, int] = {}
        self.raw: dict[Span, list[int]] = {}
        self._bus: Bus | None = None
        self._attach()

    def _attach(self) -> Bus:
        if self._bus is None:
            cfg = self.config
            self._bus = attach(self.endpoint, self, cfg.name, cfg.request_delay_s)
        return self._bus

    def open(self) -> None:
        """Nothing to do up front: the link opens on the first request, so a device that is
        down at start-up shows as fault readings, not as a start-up failure."""
        self._attach()

    def close(self) -> None:
        """Leave the bus (the last device on it closes the port); a later ``read`` rejoins."""
        if self._bus is not None:
            detach(self._bus, self)
            self._bus = None

    def read(self, time_ms: int) -> list[Reading]:
        """Read every channel and its status; raise ``DeviceError`` if the device is unreachable."""
        return self._readings(self._fetch_all(), time_ms)

    def plan(self) -> list[str]:
        """The requests one poll makes, one line each."""
        lines: list[str] = []
        for request in self._requests:
            if request.span in self._split:
                lines.extend(Request(m, (m,)).describe(self.config.unit) for m in request.members)
            else:
                lines.append(request.describe(self.config.unit))
        return lines

    def advice(self) -> list[str]:
        """What the configuration should say, learned from the device (refused ranges)."""
        return list(self._split.values())

    def probe(self, time_ms: int) -> list[ProbeRow]:
        """Read every channel once, showing the raw registers; device faults go in ``error``."""
        try:
            results = self._fetch_all()
        except DeviceError as exc:
            return [
                ProbeRow(c.param, "", None, c.unit, FAULT, str(exc)) for c in self.config.channels
            ]
        rows = []
        for channel, reading in zip(
            self.config.channels, self._readings(results, time_ms), strict=True
        ):
            registers = results[self._values[channel.param]]
            limit = self.config.limits.get(channel.param)
            notes = (
                byte_order_notes(channel, registers, limit.max if limit else None)
                if isinstance(registers, list)
                else ()
            )
            rows.append(
                ProbeRow(
                    channel.param,
                    self._raw(channel, results),
                    reading.value,
                    channel.unit,
                    reading.status,
                    reading.error,
                    notes,
                )
            )
        return rows

    def _fetch_all(self) -> Results:
        """Every span's registers (or why not). If the device stops answering part-way through
        a poll, the values already read are kept and the rest of the poll is not waited for."""
        results: Results = {}
        for index, request in enumerate(self._requests):
            try:
                self._fetch(request, results)
            except DeviceError as exc:
                for later in self._requests[index:]:  # no answer: no raw words either
                    self.raw.pop(later.span, None)
                    for span in later.members:
                        self.raw.pop(span, None)
                if not results:
                    raise  # nothing answered: the device is unreachable
                for later in self._requests[index:]:
                    for span in later.members:
                        results.setdefault(span, str(exc))
                break
        return results

    def _fetch(self, request: Request, results: Results) -> None:
        """Read one planned request into ``results``; raises ``DeviceError`` on no answer."""
        members = request.members
        outcome = None if request.span in self._split else self._request(request.span)
        self._keep_raw(request.span, outcome)
        if outcome is None or (isinstance(outcome, int) and len(members) > 1):
            for span in members:
                single = self._request(span)
                results[span] = exception_text(single, span) if isinstance(single, int) else single
                self._keep_raw(span, single)
            if outcome == ILLEGAL_DATA_ADDRESS:
                advice = refused_merge(self.name, request, results, self.config.max_gap)
                self._split[request.span] = advice
                log.warning("modbus_merged_read_refused", extra={"fields": {"advice": advice}})
            return
        for span in members:
            if isinstance(outcome, int):
                results[span] = exception_text(outcome, span)
            else:
                start = span.address - request.span.address
                results[span] = outcome[start : start + span.count]

    def _request(self, span: Span) -> list[int] | int:
        """Registers or bits read, or the Modbus exception code the device answered."""
        cfg = self.config
        tries = 1 if self._silent else cfg.retries + 1
        request = read_request(span.function, span.address, span.count, cfg.unit)
        failure: LinkError = NoAnswer("no answer")
        for _ in range(tries):
            self.requests += 1
            try:
                answer = self._attach().transact(request, cfg.timeout_s)
                result = parse_read(answer, span.function, span.count)
            except LinkDown as exc:
                self._count("link_down")
                raise DeviceError(f"{self.where}: {exc}") from None
            except (NoAnswer, BadAnswer) as exc:
                self._count(exc.kind if isinstance(exc, BadAnswer) else "timeout")
                failure = exc
                continue
            self._silent = False
            if isinstance(result, int):
                self._count(f"exception_{result}")
            if isinstance(result, int) and result in (10, 11):
                raise DeviceError(
                    f"{self.where}: {exception_text(result, span)} — the gateway cannot reach "
                    "the device: check the line behind the gateway and the unit id"
                )
            return result
        was_silent, self._silent = self._silent, isinstance(failure, NoAnswer)
        count = f"{tries} {'try' if tries == 1 else 'tries'}"
        if isinstance(failure, NoAnswer):
            again = "; not retried while it stays silent" if was_silent else ""
            raise DeviceError(
                f"{self.where}: no answer in {cfg.timeout_s} s ({count}{again}) — "
                f"{self.endpoint.hint(silent=True)}"
            )
        raise DeviceError(
            f"{self.where}: {failure} reading {span.describe()}, {count} — "
            f"{self.endpoint.hint(silent=False)}"
        )

    def _count(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1

    def _keep_raw(self, span: Span, outcome: list[int] | int | None) -> None:
        if isinstance(outcome, list):
            self.raw[span] = outcome
        elif outcome is not None:
            self.raw.pop(span, None)

    def raw_registers(self) -> dict[str, str]:
        """Per channel, the words (or bits) of its last answer, e.g. '0x4144 0xCCCD; status
        0x0000'; '' for a channel whose last read failed."""
        blocks = list(self.raw.items())  # a snapshot: the poller's thread may replace entries
        results: Results = {}
        statuses = [s.span for s in self._statuses.values() if s is not None]
        for span in {*self._values.values(), *statuses}:
            for block, words in blocks:
                offset = span.address - block.address
                if block.function == span.function and 0 <= offset <= block.count - span.count:
                    results[span] = words[offset : offset + span.count]
                    break
        return {c.param: self._raw(c, results) for c in self.config.channels}

    def request_counts(self) -> tuple[int, dict[str, int]]:
        """(tries sent, failed tries by kind) since the driver was made."""
        return self.requests, dict(self.errors)

    def _readings(self, results: Results, time_ms: int) -> list[Reading]:
        """Every channel's reading from a poll's ``results``, in channel order (a status
        register shared by several channels is worked out once)."""
        name = self.name
        statuses: dict[Span, tuple[str, str | None]] = {}
        readings: list[Reading] = []
        append = readings.append
        for param, unit, span, decode, source in self._plan:
            registers = results[span]
            if registers.__class__ is str:
                append(Reading(name, param, unit, time_ms, None, FAULT, registers))
                continue
            try:
                value = decode(registers)  # type: ignore[arg-type]
            except ValueError as exc:
                error = f"{span.function} register {span.address}: {exc}"
                append(Reading(name, param, unit, time_ms, None, FAULT, error))
                continue
            if source is None:
                append(Reading(name, param, unit, time_ms, value, MEASURING))
                continue
            known = statuses.get(source.span)
            if known is None:
                known = statuses[source.span] = status_of(source, results)
            append(Reading(name, param, unit, time_ms, value, known[0], known[1]))
        return readings

    def _raw(self, channel: ModbusChannel, results: Results) -> str:
        spans = (("", self._values[channel.param]), ("status ", self._status_span(channel)))
        return raw_words(spans, results)

    def _status_span(self, channel: ModbusChannel) -> Span | None:
        source = self._statuses[channel.param]
        return None if source is None else source.span
