"""Whether a document may be applied: verified (``agent.protocol.remote_config``), not pinned
out, newer than every version applied, a configuration ``run`` would start on (the one
preflight), and the same as the local file in every local-only part."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from agent.config.model import Config
from agent.config.remote_store import RemoteState, sha256_hex
from agent.protocol.remote_config import DocumentRefused, verify_document
from agent.protocol.signed_ack import AckKeys
from agent.runtime.preflight import load_checked_bytes
from agent.runtime.remote_config.local_only import local_only_change
from core.errors import ConfigError
from core.remote_config import RemoteConfig


@dataclass(frozen=True)
class Candidate:
    """A document that passed every check, and the configuration it makes."""

    doc: RemoteConfig
    kid: str
    digest: str  # SHA-256 hex of its TOML bytes
    config: Config


def read_document(token: bytes, keys: AckKeys, station: str) -> tuple[RemoteConfig, str, str]:
    """(document, kid, TOML digest) of a verified document; ``DocumentRefused`` otherwise."""
    verified = verify_document(token, keys, station)
    return verified.doc, verified.kid, sha256_hex(verified.doc.config.encode("utf-8"))


def check(
    doc: RemoteConfig,
    kid: str,
    digest: str,
    *,
    state: RemoteState,
    pinned: bool,
    local: Config,
    local_path: Path,
) -> Candidate:
    """The document as a ``Candidate``; ``DocumentRefused`` (pinned, replayed, older, invalid,
    local_only) otherwise."""
    if pinned:
        raise DocumentRefused("pinned", "the local file is pinned (station-agent config unpin)")
    if doc.version <= state.max_version:
        if state.applied.get(str(doc.version)) == digest:
            latest = state.max_version
            raise DocumentRefused(
                "replayed", f"version {doc.version} was applied before ({latest} is the latest)"
            )
        raise DocumentRefused(
            "older", f"version {doc.version} is not above {state.max_version}, the latest applied"
        )
    if state.local_edited_at is not None and doc.issued_at < state.local_edited_at:
        raise DocumentRefused(
            "local_newer",
            f"issued {doc.issued_at}, before the local file was edited ({state.local_edited_at}):"
            " the local file wins; issue a new document to change it",
        )
    # Relative paths resolve beside the local file; errors name the document's version.
    as_path = local_path.with_name(f"remote-config-v{doc.version}.toml")
    try:
        config = load_checked_bytes(doc.config.encode("utf-8"), as_path)
    except ConfigError as exc:
        raise DocumentRefused("invalid", str(exc)[:400]) from None
    change = local_only_change(local, config)
    if change is not None:
        raise DocumentRefused("local_only", change)
    return Candidate(doc, kid, digest, config)
