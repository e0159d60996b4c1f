"""The signing key and descriptor part of ``status`` (and of the station page).

* the key in force: the kid the chain hands on (its newest batch, or the new key of its newest
  rotation record) and the kid of ``station.jwk``;
* the last ``rotate-key`` request (the buffer's ``meta`` row ``rotate_key``: asked, sealed or
  failed, agent.records.rotation.state);
* each old private key still kept (``station.key.old-<kid>``, agent.records.rotation.keys), with the
  seq of its rotation record and the transports that have not acknowledged it yet (the file is
  removed once none is left);
* the descriptor in force (its seq, digest and when it was sealed, agent.records.descriptor).

Read through the buffer opened read-only, like the rest of ``status``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agent.buffer import Buffer
from agent.config.model import Config
from agent.records.descriptor import in_force
from agent.records.rotation.keys import KeyFiles
from agent.records.rotation.state import chain_key, read_request, rotations

KINDS_SCHEMA = 4  # the buffer schema version that added batches.kind (agent.buffer.schema)


def key_section(buffer: Buffer, config: Config) -> dict[str, Any]:
    """What ``status --json`` shows under ``signing_key`` and ``descriptor``."""
    files = KeyFiles(config.signing.key)
    if buffer.file.schema_version < KINDS_SCHEMA:  # read-only, not migrated: no records yet
        kid = _file_kid(files)
        return {
            "signing_key": {
                "kid": kid,
                "file_kid": kid,
                "kept_in": None,
                "rotation_request": None,
                "old_keys_kept": [],
            },
            "descriptor": None,
        }
    named = chain_key(buffer)
    batch_transports = [t.name for t in config.transports if not t.status_module]
    kept = []
    by_old = {old: seq for seq, old, _new in rotations(buffer)}
    for kid, path in files.retiring().items():
        seq = by_old.get(kid)
        acked = buffer.records.acked_by(seq) if seq is not None else set()
        kept.append(
            {
                "kid": kid,
                "file": str(path),
                "rotation_seq": seq,
                "owed_by": [t for t in batch_transports if t not in acked],
            }
        )
    descriptor = in_force(buffer)
    sealed_at = None if descriptor is None else buffer.records.sealed_at_ms(descriptor.seq)
    request = read_request(buffer)
    kid = named[1] if named else _file_kid(files)
    return {
        "signing_key": {
            "kid": kid,
            "file_kid": _file_kid(files),
            "kept_in": _kept_in(files, kid),
            "rotation_request": None
            if request is None
            else {
                "state": request.get("state"),
                "kid": request.get("kid"),
                "asked_at_ms": int(request["at"]) // 1_000_000 if "at" in request else None,
                "seq": request.get("seq"),
                "error": request.get("error"),
            },
            "old_keys_kept": kept,
        },
        "descriptor": None
        if descriptor is None
        else {
            "seq": descriptor.seq,
            "digest": descriptor.digest,
            "sealed_at_ms": sealed_at,
            "record_kept": sealed_at is not None,
        },
    }


def _kept_in(files: KeyFiles, kid: str | None) -> str | None:
    """The kept old key file named for the chain's key when ``station.jwk`` is another key (a
    key put back from elsewhere, or a rotate-key on another buffer): what to put back. By name
    only: ``status`` does not read private keys."""
    if kid is None or kid == _file_kid(files) or kid == _jwk_kid(files.next_jwk):
        return None
    path = files.old_key(kid)
    return str(path) if path.exists() else None


def _file_kid(files: KeyFiles) -> str | None:
    return _jwk_kid(files.jwk)


def _jwk_kid(path: Path) -> str | None:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    kid = data.get("kid") if isinstance(data, dict) else None
    return kid if isinstance(kid, str) else None


def key_lines(status: dict[str, Any], when) -> list[str]:
    """The ``signing key:`` and ``descriptor:`` lines of ``status``; ``when(ms)`` formats a time."""
    key = status["signing_key"]
    lines = [f"signing key: kid {key['kid'] or '-'}"]
    if key["file_kid"] and key["kid"] and key["file_kid"] != key["kid"]:
        then = "(the agent finishes a rotation at its next start)"
        if key.get("kept_in"):
            then = (
                f"(the key in force is in {key['kept_in']}: put it back as station.key; "
                "run refuses until then)"
            )
        lines.append(
            f"  KEY FILE MISMATCH: station.jwk holds kid {key['file_kid']}, the chain is signed "
            f"on by {key['kid']} {then}"
        )
    request = key["rotation_request"]
    if request is not None:
        state = request["state"]
        text = {
            "asked": f"rotation to kid {request['kid']} ASKED {when(request['asked_at_ms'])}, "
            "not sealed yet (the running agent answers within seconds)",
            "sealed": f"last rotation: to kid {request['kid']}, sealed at seq {request['seq']}",
            "failed": f"ROTATION FAILED (to kid {request['kid']}): {request['error']}",
        }.get(state, f"rotation request in state {state!r}")
        lines.append(f"  {text}")
    for old in key["old_keys_kept"]:
        owed = ", ".join(old["owed_by"]) or "none (removed at the agent's next check)"
        lines.append(
            f"  old key {old['kid']} kept ({old['file']}) until every transport acknowledged its "
            f"rotation record seq {old['rotation_seq'] or '?'}; still owed by: {owed}"
        )
    d = status["descriptor"]
    if d is None:
        lines.append("descriptor: none sealed yet")
    else:
        sealed = when(d["sealed_at_ms"]) if d["record_kept"] else "record pruned, sealed again soon"
        lines.append(f"descriptor: seq {d['seq']} (sealed {sealed}), digest {d['digest']}")
    return lines
