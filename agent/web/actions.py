"""What the station page may change, and only for whoever holds the ``[web]`` token.

Without ``[web] token_file`` the listener changes nothing: every ``POST`` is refused with 403.
With it, ``POST /api/action/<name>`` with ``Authorization: Bearer <token>`` and a JSON object
body runs the action; a missing or wrong token is refused with 401. The token is compared in
constant time (both sides hashed first, so not even its length leaks). A browser on another
site cannot send the header without a CORS preflight, which this server never grants.

An action is a function ``(agent, arguments) -> result`` in ``ACTIONS``; it validates its
arguments (``ActionError`` -> 400) and logs what it did. Maintenance windows (``station-agent
maintenance start/stop``) are meant to add ``maintenance_start`` / ``maintenance_stop`` here.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from agent.config.web import WebConfig
from agent.support.logs import event

if TYPE_CHECKING:
    from agent.web.view import RuntimeView

log = logging.getLogger("agent.web")
MAX_BODY = 4096
MAX_SEQS = 1000


class ActionError(ValueError):
    """Arguments an action cannot take; the text says which and what it expected."""


def refusal(config: WebConfig, authorization: str | None) -> tuple[int, str] | None:
    """None if the request carries the configured token; else (HTTP status, why)."""
    if config.token is None:
        return 403, "the station page is read-only: no [web] token_file is configured"
    scheme, _, given = (authorization or "").partition(" ")
    expected = config.token.get_secret_value().encode()
    digest = hashlib.sha256(given.strip().encode("utf-8", "replace")).digest()
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        digest, hashlib.sha256(expected).digest()
    ):
        return 401, "missing or wrong token (Authorization: Bearer <token>)"
    return None


def _requeue(agent: RuntimeView, args: dict[str, Any]) -> dict[str, Any]:
    """Send a transport's quarantined batches again (all, or ``seqs``), as ``requeue`` does."""
    names = [t.name for t in agent.transports() if t.batches]
    transport = args.get("transport")
    if transport not in names:
        raise ActionError(f"transport: expected one of {names}, got {transport!r}")
    seqs = args.get("seqs")
    if seqs is not None and (
        not isinstance(seqs, list)
        or len(seqs) > MAX_SEQS
        or not all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in seqs)
    ):
        raise ActionError(f"seqs: expected a list of at most {MAX_SEQS} batch numbers")
    requeued = agent.requeue(transport, seqs or None)
    event(log, logging.INFO, "web_requeue", transport=transport, seqs=requeued)
    return {"transport": transport, "requeued": requeued}


ACTIONS: dict[str, Callable[[RuntimeView, dict[str, Any]], dict[str, Any]]] = {
    "requeue": _requeue,
}
