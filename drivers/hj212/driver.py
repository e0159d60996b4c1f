"""The ``hj212`` driver: a datalogger that pushes HJ 212-2017 packets (a ``ListeningDriver``)."""

from __future__ import annotations

import time

from core.errors import DeviceError
from core.reading import FAULT, Reading
from drivers.base import Channel, Deliver, ProbeRow
from drivers.hj212.config import Hj212Config
from drivers.hj212.links import SerialPort, TcpClient, TcpServer
from drivers.hj212.session import Session


class Hj212Driver:
    """Receives one datalogger's packets (server, client or serial) and delivers readings."""

    def __init__(self, config: Hj212Config) -> None:
        self.config = config
        self.name = config.name
        self.channels = [
            Channel(param, unit)
            for c in config.channels
            for param, unit in config.channel_params(c)
        ]
        self.session = Session(config, config.name)
        self._server: TcpServer | None = None
        self._link: TcpClient | SerialPort | None = None
        self._probed: list[Reading] = []

    @property
    def counts(self) -> dict[str, int]:
        """Faults and events by reason (see the README's fault table)."""
        return dict(self.session.counts)

    @property
    def address(self) -> tuple[str, int] | None:
        """Where the server listens (its port when configured as 0)."""
        return self._server.address if self._server else None

    def start(self, deliver: Deliver) -> None:
        """Start listening / connecting in background threads; returns at once."""
        self.session.deliver = deliver
        cfg = self.config
        try:
            if cfg.mode == "server":
                self._server = TcpServer.acquire(cfg.host, cfg.port or 0, self.session)
            elif cfg.mode == "client":
                self._link = TcpClient(self.session)
            else:
                self._link = SerialPort(self.session)
        except (OSError, ValueError) as exc:
            raise DeviceError(
                f"device {self.name!r}: cannot listen on {cfg.host}:{cfg.port}: {exc}"
            ) from None

    def stop(self) -> None:
        """Stop the threads and close the connections this device uses."""
        if self._server is not None:
            self._server.release(self.session)
            self._server = None
        if self._link is not None:
            self._link.stop()
            self._link = None

    # --- station-agent probe: listen for a while, show what came -------------------------------
    def open(self) -> None:
        """For probe: listen without answering, so the datalogger keeps its data for the agent."""
        self._probed = []
        self.session.config = self.config.model_copy(update={"answer": False})
        self.session.stored_means = "decoded (probe: not stored, not answered)"
        self.start(self._probed.extend)

    def close(self) -> None:
        self.stop()

    def plan(self) -> list[str]:
        cfg = self.config
        where = {
            "server": f"listen on {cfg.host}:{cfg.port} for MN {cfg.mn}",
            "client": f"connect to {cfg.host}:{cfg.port}, expect MN {cfg.mn}",
            "serial": f"read {cfg.serial_port} {cfg.baudrate} {cfg.bytesize}{cfg.parity}"
            f"{cfg.stopbits}, expect MN {cfg.mn}",
        }[cfg.mode]
        lines = [where, f"waited up to {PROBE_WAIT_S:g} s for a data packet; packets seen:"]
        for seen in self.session.recent:
            lines.append(f"  {seen.peer} CRC {seen.crc}: {seen.raw}")
            lines.append(
                f"    -> {seen.outcome}" + (f"; replied {seen.reply}" if seen.reply else "")
            )
        if self.session.counts:
            lines.append("counts: " + ", ".join(f"{k}={v}" for k, v in self.session.counts.items()))
        if self.session.maker.unconfigured:
            lines.append(
                "codes sent but not configured: "
                + ", ".join(sorted(self.session.maker.unconfigured))
            )
        return lines

    def probe(self, time_ms: int) -> list[ProbeRow]:
        """Wait for the first data packet (at most ``PROBE_WAIT_S``); one row per channel."""
        deadline = time.monotonic() + PROBE_WAIT_S
        while not self._probed and time.monotonic() < deadline:
            time.sleep(0.1)
        if not self._probed:
            error = f"no data packet with MN {self.config.mn} in {PROBE_WAIT_S:g} s"
            return [ProbeRow(ch.param, "", None, ch.unit, FAULT, error) for ch in self.channels]
        got = {r.param: r for r in self._probed}
        rows = []
        for ch in self.channels:
            r = got.get(ch.param)
            if r is None:
                # aggregates come every minute/hour/day: not seen yet is not a fault
                rows.append(ProbeRow(ch.param, "(not sent yet)", None, ch.unit, "-"))
            else:
                rows.append(ProbeRow(ch.param, "HJ 212", r.value, r.unit, r.status, r.error))
        return rows


PROBE_WAIT_S = 70.0  # a datalogger sends real-time data at least every minute
