"""Issue 33 (item 2): paho's network thread, idle, wakes every ``LOOP_S`` (a quarter of the
keepalive at most), not every second; the connection stays up, and a batch submitted to the
sleeping thread still goes out at once. Real Mosquitto; the thread's wake-ups counted by the
kernel (``voluntary_ctxt_switches``)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from agent.transports.mqtt.transport import LOOP_S, MqttTransport, MqttTransportConfig
from core.batch import SealedBatch
from tests.helpers.station import wait_for


def _paho_wakeups() -> int:
    """How many times paho's network thread has gone to sleep so far."""
    (thread,) = [t for t in threading.enumerate() if t.name.startswith("paho-mqtt-client-idle")]
    status = Path(f"/proc/self/task/{thread.native_id}/status").read_text()
    return int(status.split("voluntary_ctxt_switches:")[1].split()[0])


def test_an_idle_connection_wakes_paho_every_loop_s_not_every_second(mosquitto) -> None:
    config = MqttTransportConfig(
        type="mqtt", host="127.0.0.1", port=mosquitto.port, client_id="idle", keepalive_s=30
    )
    transport = MqttTransport(config, "S-1")
    transport.start(lambda *outcome: None)
    try:
        wait_for(transport.connected, 10, "connected to the broker")
        wait_for(lambda: transport._subscribed, 10, "subscribed to the acknowledgements")
        # The counters are read at the two ends of an idle window (no publish): the window is
        # the scenario, not a wait for anything; this thread stays asleep through it, so it
        # does not contend with paho's for the GIL (a wake-up of its own in the count).
        before, started = _paho_wakeups(), time.monotonic()
        time.sleep(2 * LOOP_S + 0.5)
        woke, window = _paho_wakeups() - before, time.monotonic() - started
        # Every second: at least 10 in the window. Every LOOP_S: 2, and a few more when this
        # busy machine's scheduler preempts the thread around them.
        assert woke <= 5, f"paho's thread woke {woke} times in {window:.1f} s"
        assert transport.connected()
        # A batch submitted to the sleeping thread goes out at once, not at its next timeout.
        got: list[float] = []
        subscribed: list[object] = []
        listener = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="listener")
        listener.on_message = lambda _c, _u, _m: got.append(time.monotonic())
        listener.on_subscribe = lambda *suback: subscribed.append(suback)
        listener.connect("127.0.0.1", mosquitto.port)
        listener.subscribe(transport.topic, qos=1)
        listener.loop_start()
        try:
            wait_for(lambda: subscribed, 10, "the listener subscribed")
            sent = time.monotonic()
            transport.submit(SealedBatch(1, "e30.e30.sig", 0, 0))
            wait_for(lambda: got, 10, "the batch at the broker")
            assert got[0] - sent < 1.0, f"published after {got[0] - sent:.2f} s"
        finally:
            listener.loop_stop()
            listener.disconnect()
    finally:
        transport.stop(timeout_s=1)


def test_the_timeout_stays_a_quarter_of_a_short_keepalive(mosquitto) -> None:
    config = MqttTransportConfig(
        type="mqtt", host="127.0.0.1", port=mosquitto.port, client_id="idle-short", keepalive_s=5
    )
    transport = MqttTransport(config, "S-1")
    assert transport._client.loop_s == 1.25  # a ping at most 1.25 s late of its 5 s
