"""Prometheus metrics of one running agent (``/metrics`` on the ``[web]`` listener).

Counters and gauges are read from the agent's own state at each scrape (nothing is counted
twice); the poll duration is a histogram fed by the poller. One registry per agent, never the
global one, so a reload starts clean.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from agent.web.live import StationView

if TYPE_CHECKING:
    from agent.web.view import DeviceLive, RuntimeView

PREFIX = "station_agent"
POLL_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class _AgentCollector(Collector):
    def __init__(self, agent: RuntimeView, view: StationView) -> None:
        self.agent, self.view = agent, view

    def collect(self) -> Iterator[Metric]:
        agent, devices = self.agent, self.agent.devices()
        figures = self.view.sections()  # what status and the page show, computed once

        def per_device(name: str, doc: str, values: dict[str, int]) -> Metric:
            family = CounterMetricFamily(f"{PREFIX}_{name}", doc, labels=["device"])
            for device, value in values.items():
                family.add_metric([device], value)
            return family

        yield per_device(
            "readings_polled",
            "Readings the devices answered (missed poll slots not included).",
            {d.name: d.read_since_start for d in devices},
        )
        yield per_device(
            "readings_stored",
            "Readings committed to the buffer (missed slots' fault readings included).",
            {d.name: d.stored_since_start for d in devices},
        )
        up = GaugeMetricFamily(
            f"{PREFIX}_device_up", "1 if the device's last poll had no error.", labels=["device"]
        )
        for device in figures["devices"]:
            up.add_metric([device["name"]], 1 if device["up"] else 0)
        yield up
        yield from _wire(devices)
        yield CounterMetricFamily(
            f"{PREFIX}_missed_polls",
            "Poll slots that could not start on time.",
            figures["agent"].get("missed_polls") or 0,
        )
        yield CounterMetricFamily(
            f"{PREFIX}_batches_sealed", "Batches sealed since start.", agent.sealed
        )
        acks = CounterMetricFamily(
            f"{PREFIX}_acks", "Batches (files) acknowledged.", labels=["transport"]
        )
        failures = CounterMetricFamily(
            f"{PREFIX}_send_failures", "Sends to retry (no acknowledgement).", labels=["transport"]
        )
        connected = GaugeMetricFamily(
            f"{PREFIX}_transport_connected",
            "1 if the transport can deliver now.",
            labels=["transport"],
        )
        for t in agent.transports():
            if t.batches:
                failures.add_metric([t.name], t.send_failures)
        for t in figures["transports"]:
            acks.add_metric([t["name"]], t.get("acked_since_start") or 0)
            if t.get("connected") is not None:
                connected.add_metric([t["name"]], 1 if t["connected"] else 0)
        yield acks
        yield failures
        yield connected
        backlog = GaugeMetricFamily(
            f"{PREFIX}_backlog_readings", "Readings not yet acknowledged.", labels=["transport"]
        )
        oldest = GaugeMetricFamily(
            f"{PREFIX}_oldest_unacked_reading_age_seconds",
            "Age of the oldest reading not yet acknowledged (0: none).",
            labels=["transport"],
        )
        for t in figures["transports"]:
            if "backlog_readings" in t:  # batch transports (a period-file one counts files)
                backlog.add_metric([t["name"]], t["backlog_readings"])
                oldest.add_metric([t["name"]], t["oldest_unacked_reading_age_s"] or 0)
        yield backlog
        yield oldest
        yield GaugeMetricFamily(
            f"{PREFIX}_buffer_bytes",
            "Size of the buffer on disk (database and write-ahead log).",
            figures["buffer_bytes"],
        )
        yield from _clock(figures["clock"])


def _wire(devices: list[DeviceLive]) -> Iterator[Metric]:
    """Requests and failed requests by kind, per Modbus device (counted by its driver)."""
    requests = CounterMetricFamily(
        f"{PREFIX}_modbus_requests",
        "Modbus requests sent (each try counts).",
        labels=["device"],
    )
    errors = CounterMetricFamily(
        f"{PREFIX}_modbus_errors",
        "Modbus requests that failed, by kind: timeout, crc, incomplete, unit_mismatch, "
        "function_mismatch, malformed, link_down, exception_N (Modbus exception code N).",
        labels=["device", "kind"],
    )
    for device in devices:
        if device.requests is not None:
            requests.add_metric([device.name], device.requests)
            for kind, count in sorted(device.request_errors.items()):
                errors.add_metric([device.name, kind], count)
    yield requests
    yield errors


def _clock(clock: dict[str, Any]) -> Iterator[Metric]:
    """The clock section's figures (none when the kernel cannot be asked)."""
    if clock["synchronized"] is None:
        return
    yield GaugeMetricFamily(
        f"{PREFIX}_clock_synchronized",
        "1 if the system clock is synchronized (kernel maximum error below 16 s, as timedatectl).",
        1 if clock["synchronized"] else 0,
    )
    yield GaugeMetricFamily(
        f"{PREFIX}_clock_max_error_seconds",
        "The kernel's maximum error estimate of the system clock.",
        clock["max_error_s"],
    )


class Metrics:
    """The agent's registry: its state at each scrape plus the poll duration histogram."""

    def __init__(self, agent: RuntimeView, view: StationView) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_AgentCollector(agent, view))
        self.poll_seconds = Histogram(
            f"{PREFIX}_poll_duration_seconds",
            "How long one poll of a device took.",
            ["device"],
            buckets=POLL_BUCKETS,
            registry=self.registry,
        )
        agent.on_poll(self.observe_poll)

    def observe_poll(self, device: str, seconds: float) -> None:
        self.poll_seconds.labels(device).observe(seconds)

    def exposition(self) -> bytes:
        """The text format Prometheus scrapes."""
        return generate_latest(self.registry)
