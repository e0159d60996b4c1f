"""``station-agent check-transports`` for an HTTPS transport: does the warehouse answer?

Steps: TCP, TLS (with the client certificate if configured), one ``GET`` of the batches URL: any
answer but 401/403 (refused), 404 (wrong URL) or a server failure counts. No batch is posted.
With ``ack_keys``: one probe is posted (``agent.transports.check.ack_probe``: signed by a key the
warehouse cannot know, answered 425 and stored nowhere) and its signed acknowledgement verified.
"""

from __future__ import annotations

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

from agent.protocol.signed_ack import AckKeys
from agent.support.bounded import MAX_ANSWER
from agent.transports.check import (
    TIMEOUT_S,
    Verdict,
    ack_probe,
    ack_verified,
    tcp_reachable,
    tls_verified,
)
from agent.transports.https.transport import connection
from agent.transports.notices import UNSIGNED_ACKS
from agent.transports.tls import client_context


def check(cfg: Any, station: str, timeout: float = TIMEOUT_S) -> Verdict:
    """Connect (TLS verified) and ask the batches URL with a GET: no batch is posted."""
    verdict = Verdict(cfg.name, "https")
    url = f"{cfg.base_url.rstrip('/')}/stations/{station}/batches"
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host, port = parts.hostname or "", parts.port or (443 if secure else 80)
    ctx = client_context(cfg.tls) if secure else None
    if not tcp_reachable(verdict, host, port, timeout):
        return verdict
    if ctx is not None and not tls_verified(verdict, host, port, ctx, timeout):
        return verdict
    conn = connection(url, ctx, timeout)
    try:
        conn.request("GET", parts.path, headers={"User-Agent": "station-agent check"})
        status = conn.getresponse().status  # the status says it all; the body is never read
    except (OSError, http.client.HTTPException) as exc:
        verdict.step(False, f"GET {url}: {exc or type(exc).__name__}")
        return verdict
    finally:
        conn.close()
    if status in (401, 403):
        verdict.step(False, f"GET {url}: HTTP {status}, the warehouse refuses this station")
    elif status == 404:
        verdict.step(False, f"GET {url}: HTTP 404, check base_url and the station id")
    elif status >= 500 and status not in (501, 505):
        verdict.step(False, f"GET {url}: HTTP {status}, the warehouse is failing")
    else:
        verdict.step(True, f"GET {url}: HTTP {status} (the warehouse answers; no batch sent)")
    if verdict.ok and cfg.ack_keys is None:
        verdict.notes.append(UNSIGNED_ACKS)
    elif verdict.ok:
        _probe(verdict, url, ctx, timeout, station, AckKeys.load(cfg.ack_keys))
    return verdict


def _probe(verdict: Verdict, url: str, ctx: Any, timeout: float, station: str, keys: Any) -> None:
    """POST the probe; its answer's ``jws`` must verify with the pinned keys."""
    body, digest = ack_probe(station)
    conn = connection(url, ctx, timeout)
    try:
        headers = {"Content-Type": "application/jose", "User-Agent": "station-agent check"}
        conn.request("POST", urlsplit(url).path, body=body, headers=headers)
        response = conn.getresponse()
        status, text = response.status, response.read(MAX_ANSWER)
    except (OSError, http.client.HTTPException) as exc:
        verdict.step(False, f"POST a probe to {url}: {exc or type(exc).__name__}")
        return
    finally:
        conn.close()
    try:
        answer = json.loads(text)
    except ValueError:
        answer = None
    jws = answer.get("jws") if isinstance(answer, dict) else None
    ack_verified(verdict, jws, keys, station, digest, f"probe answered HTTP {status}")
