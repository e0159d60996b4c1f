"""``station-agent check-transports``: can this station reach each of its warehouses?

Each configured transport is checked by the ``check.py`` of its folder
(``agent/transports/<type>/check.py``): TCP, TLS, login, permissions; the first failed step ends
that transport's checks. No batch is sent and the buffer is not opened.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # imported where used: building the parser stays cheap (no pydantic, ssl)
    from agent.config.model import Config
    from agent.transports.check import Verdict


def check_all(config: Config, timeout: float | None = None) -> list[Verdict]:
    """One verdict per configured transport, in the configuration's order (``timeout``: s for
    each answer, default ``agent.transports.check.TIMEOUT_S``)."""
    from agent.transports import check_of
    from agent.transports.check import TIMEOUT_S, Verdict
    from core.errors import ConfigError

    timeout = TIMEOUT_S if timeout is None else timeout

    verdicts = []
    for t in config.transports:
        try:
            verdicts.append(check_of(t.type)(t, config.station.id, timeout))
        except ConfigError as exc:  # TLS files that cannot be loaded
            verdict = Verdict(t.name, t.type)
            verdict.step(False, str(exc))
            verdicts.append(verdict)
    return verdicts


def _cmd_check_transports(args: argparse.Namespace) -> int:
    from agent.config.model import load_config

    verdicts = check_all(load_config(args.config), timeout=args.timeout)
    for verdict in verdicts:
        print("\n".join(verdict.lines()), flush=True)
    failed = [v.name for v in verdicts if not v.ok]
    print(f"{len(verdicts) - len(failed)} of {len(verdicts)} transport(s) ok", flush=True)
    return 1 if failed else 0


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser(
        "check-transports",
        help="test each transport's connection, TLS, login and permissions; sends no data",
        description="For each configured transport: TCP, TLS (certificate verified), login, "
        "and for MQTT the permission to subscribe to the acknowledgements and to publish "
        "under the station's topic prefix; for HTTPS one GET of the batches URL. No batch is "
        "sent, the buffer is not opened. Exit status 1 if any transport failed.",
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument(
        "--timeout", type=float, default=10.0, help="seconds to wait for each answer (10)"
    )
    p.set_defaults(func=_cmd_check_transports)
