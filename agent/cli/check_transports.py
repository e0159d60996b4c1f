"""``station-agent check-transports``: can this station reach each of its warehouses?

Each configured transport is checked by the ``check.py`` of its folder
(``agent/transports/<type>/check.py``): TCP, TLS, login, permissions; the first failed step ends
that transport's checks. No batch is sent and the buffer is not opened.
"""

from __future__ import annotations

from agent.config.model import Config
from agent.transports import check_of
from agent.transports.check import TIMEOUT_S, Verdict
from core.errors import ConfigError


def check_all(config: Config, timeout: float = TIMEOUT_S) -> list[Verdict]:
    """One verdict per configured transport, in the configuration's order."""
    verdicts = []
    for t in config.transports:
        try:
            verdicts.append(check_of(t.type)(t, config.station.id, timeout))
        except ConfigError as exc:  # TLS files that cannot be loaded
            verdict = Verdict(t.name, t.type)
            verdict.step(False, str(exc))
            verdicts.append(verdict)
    return verdicts
