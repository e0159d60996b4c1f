"""``station-warehouse serve``: the HTTPS intake of warehouse.toml's ``[intake.https]``."""

from __future__ import annotations

import argparse
import signal
import threading

from warehouse.commands import config_argument, open_configured
from warehouse.config import WarehouseConfigError, ack_key
from warehouse.https_intake import HttpsIntake, tls_context
from warehouse.intake import Intake


def add(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve",
        help="receive batches over HTTPS ([intake.https]) until SIGTERM",
        description="Serve POST /stations/{id}/batches with TLS: each batch verified and "
        "stored in one transaction before it is answered 201.",
    )
    config_argument(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    config, store = open_configured(args)
    https = config.intake.https
    if https is None:
        raise WarehouseConfigError(f"{config.path}: intake.https: missing (the HTTPS intake)")
    try:
        tls = tls_context(https.cert_file, https.key_file, https.client_ca_file)
    except (OSError, ValueError) as exc:
        raise WarehouseConfigError(
            f"{config.path}: intake.https.cert_file/key_file: cannot load ({exc})"
        ) from None
    try:
        server = HttpsIntake(
            Intake(store, ack_key(config)),
            host=https.host,
            port=https.port,
            tls=tls,
            timeout_s=https.timeout_s,
            max_connections=https.max_connections,
        )
    except OSError as exc:
        raise WarehouseConfigError(
            f"{config.path}: intake.https: cannot listen on {https.host}:{https.port} "
            f"({exc.strerror})"
        ) from None
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server.start()
    print(f"warehouse intake listening on https://{https.host}:{server.port}", flush=True)
    stop.wait()
    server.stop()
    store.close()
    return 0
