"""The agent's remote configuration: decide at start, take documents, apply, roll back, pin.

Documents arrive on the fetch threads (``agent.runtime.remote_config.fetch``) and wait in a
small inbox; the service's loop (``agent.service``) hands them to ``tick`` on its own thread, as
it does SIGHUP, so a document and a reload never run at once. Everything is applied through the
service's ``switch`` (``agent.runtime.reload``: only what changed restarts) and committed to
``<buffer>.remote/state.json`` after the switch (``agent.config.remote_store``). Every
outcome is a ``config`` record in the chain and a log line.

Who wins: the local file, when it was edited after the remote document in force was applied
(found at a reload or at start: its digest is not the one it had when the document was applied)
or when it is pinned; otherwise the newest verified document.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from agent.buffer import Buffer
from agent.config.model import Config
from agent.config.remote import RemoteConfigSection
from agent.config.remote_store import RemoteStore, Source, file_digest, sha256_hex
from agent.protocol.remote_config import DocumentRefused
from agent.protocol.signed_ack import AckKeys
from agent.runtime.preflight import load_checked, load_checked_bytes
from agent.runtime.remote_config import decide
from agent.runtime.remote_config.inbox import Inbox
from agent.runtime.remote_config.loglevel import LogLevels
from agent.runtime.remote_config.probation import Probation
from agent.support.logs import event
from core.batch import SealedBatch

log = logging.getLogger("agent.remote_config")


class _Sender(Protocol):
    name: str

    def delivering(self) -> bool: ...


class _Agent(Protocol):
    """What the controller reads of the running agent (``agent.runtime.agent.Agent``)."""

    config: Config
    buffer: Buffer

    @property
    def senders(self) -> Sequence[_Sender]: ...

    def request_record(self, kind: str, body: dict[str, Any]) -> SealedBatch: ...


class Host(Protocol):
    """What the controller needs of the service (``agent.service.Service``)."""

    @property
    def agent(self) -> _Agent: ...

    def switch(self, config: Config) -> None: ...


def pinned_keys(config: Config) -> AckKeys:
    """``[remote_config] keys``, else every transport's ``ack_keys`` together."""
    if config.remote_config is not None and config.remote_config.keys is not None:
        return AckKeys.load(config.remote_config.keys)
    keys: dict[str, Any] = {}
    for t in config.transports:
        path = getattr(t, "ack_keys", None)
        if path is not None:
            keys.update(AckKeys.load(path).keys)
    return AckKeys(keys, "ack_keys")


class _Records:
    """The ``config`` records and the sources they name (``RemoteControl``'s helpers)."""

    local_digest: str
    local_path: Path
    store: RemoteStore
    host: Host | None
    _pending: list[dict[str, Any]]

    def _local_source(self) -> Source:
        return Source("local", self.local_digest)

    def _load(self, src: Source) -> tuple[Source, Config] | None:
        return load_kept(self.store, self.local_path, src)

    def _queue(self, outcome: str, src: Source, reason: str) -> None:
        self._pending.append(_body(outcome, src, reason))

    def _record(self, outcome: str, src: Source | None, reason: str, **extra: Any) -> int:
        """Seal a ``config`` record; its seq."""
        return self._seal(_body(outcome, src or self._local_source(), reason, **extra))

    def _seal(self, body: dict[str, Any]) -> int:
        assert self.host is not None
        return self.host.agent.request_record("config", body).seq


class RemoteControl(_Records):
    """One agent's remote configuration (built only when ``[remote_config] enabled``)."""

    def __init__(self, local_path: Path, local: Config) -> None:
        self.local_path, self.local = Path(local_path), local
        self.local_digest = file_digest(self.local_path) or sha256_hex(b"")
        self.store = RemoteStore(local.buffer.path)
        self.state = self.store.load()
        self.state.local_path = str(self.local_path.resolve())
        if self.store.error:
            event(log, logging.ERROR, "remote_config_state_unreadable", error=self.store.error)
        self.keys = pinned_keys(local)
        self.host: Host | None = None
        self.probation: Probation | None = None
        self.inbox = Inbox()
        self._seen_refused: set[str] = set()
        self._pending: list[dict[str, Any]] = []
        self._fetchers: list[Any] = []  # fetch.Poller, fetch.MqttWatch
        self.levels = LogLevels(
            self.store,
            self.state,
            lambda reason, level: self._record(
                "log_level", self.state.effective, reason, log_level=level
            ),
        )

    # --- start ------------------------------------------------------------------------------
    def starting_config(self) -> Config:
        """The configuration to start on: the remote document in force, unless the local file
        was edited meanwhile or is pinned (then the local file, reported)."""
        remote, local_src = self.state.remote, self._local_source()
        chosen: tuple[Source, Config] = (local_src, self.local)
        if remote is not None and not self.store.pinned:
            if remote.local_digest != self.local_digest:
                self._queue(
                    "applied",
                    local_src,
                    f"local file edited after remote version "
                    f"{remote.version} was applied: the local file wins",
                )
                self.state.local_edited_at = _now_ms()
            else:
                chosen = self._load(remote) or chosen
        if chosen[0].source == "local":
            self.state.remote = None
        previous = self.state.effective
        self.state.effective = chosen[0]
        if previous is None or previous.digest != chosen[0].digest and not self._pending:
            self._queue("applied", chosen[0], "started")
        return chosen[1]

    def start(self, host: Host, wake: Callable[[], None]) -> None:
        """Record what ``starting_config`` decided, restore a remote log level, fetch."""
        self.host, self.inbox.wake = host, wake
        self.levels.wake_at = lambda delay_s: _wake_at(delay_s, wake)
        self.store.save(self.state)
        for body in self._pending:
            self._seal(body)
        self._pending.clear()
        self.levels.restore()
        resumed = Probation.resumed(self.state.probation)  # a restart does not end a probation
        if resumed and self.state.effective and self.state.effective.version == resumed.version:
            self.probation = resumed
            _wake_at(resumed.deadline - time.monotonic(), wake)
        from agent.runtime.remote_config.fetch import start_fetchers  # paho: only when used

        config = host.agent.config
        self._fetchers = start_fetchers(config, self._section(config), self.inbox.put)

    def _section(self, config: Config) -> RemoteConfigSection:
        """The effective configuration's ``[remote_config]``, else the local file's."""
        section = config.remote_config or self.local.remote_config
        assert section is not None  # RemoteControl exists only when the local file has one
        return section

    def stop(self) -> None:
        for fetcher in self._fetchers:
            fetcher.stop()
        self._fetchers.clear()

    # --- the service loop -------------------------------------------------------------------
    def tick(self) -> None:
        """Documents that arrived, the pin, the probation, the log level's end."""
        self._check_pin()
        for token, via in self.inbox.drain():
            self.consider(token, via)
        self._check_probation()
        self.levels.check()

    def consider(self, token: bytes, via: str) -> None:
        """Verify, check and apply one document, or refuse it (recorded, logged)."""
        token_digest = sha256_hex(token)
        if token_digest in self._seen_refused:
            return  # the same bytes again (a retained message at reconnect): refused once
        doc, kid, digest = None, None, token_digest
        try:
            doc, kid, digest = decide.read_document(token, self.keys, self.local.station.id)
            eff = self.state.effective
            if eff is not None and (eff.version, eff.digest) == (doc.version, digest):
                return  # the document in force, fetched again
            candidate = decide.check(
                doc,
                kid,
                digest,
                state=self.state,
                pinned=self.store.pinned,
                local=self.local,
                local_path=self.local_path,
            )
            self._apply(candidate, via)
        except DocumentRefused as exc:
            self._seen_refused.add(token_digest)
            src = Source("remote", digest, doc.version if doc else None, kid)
            event(
                log,
                logging.WARNING,
                "remote_config_refused",
                via=via,
                version=src.version,
                reason=exc.reason,
                detail=exc.detail[:300],
            )
            self._record("refused", src, f"{exc.reason}: {exc.detail}")

    def _apply(self, c: decide.Candidate, via: str) -> None:
        assert self.host is not None
        file = self.store.write_document(c.doc.version, c.doc.config)
        before = [s.name for s in self.host.agent.senders if s.delivering()]
        try:
            self.host.switch(c.config)
        except Exception as exc:
            raise decide.DocumentRefused("reload_failed", f"{type(exc).__name__}: {exc}") from None
        src = Source("remote", c.digest, c.doc.version, c.kid, file, self.local_digest)
        if self.probation is None:  # a document on probation is not yet a good one
            self.state.last_good = self.state.effective
        self.state.effective = self.state.remote = src
        self.state.max_version = c.doc.version
        self.state.applied[str(c.doc.version)] = c.digest
        self.store.save(self.state)  # the commit point
        event(
            log,
            logging.INFO,
            "remote_config_applied",
            via=via,
            version=c.doc.version,
            kid=c.kid,
            digest=c.digest,
        )
        batch = self._record("applied", src, f"via {via}")
        after = [s.name for s in self.host.agent.senders]
        probation_s = self._section(c.config).probation_s
        self.probation = Probation.begin(c.doc.version, batch, before, after, probation_s)
        self.state.probation = self.probation.saved()
        self.store.save(self.state)
        _wake_at(probation_s, self.inbox.wake)  # the verdict at the deadline, not a tick later
        if c.doc.log_level is not None:
            self.levels.set(c.doc.log_level)

    # --- probation and rollback ---------------------------------------------------------------
    def _check_probation(self) -> None:
        if self.probation is None or self.host is None:
            return
        verdict = self.probation.verdict(self.host.agent.buffer)
        if verdict is None:
            return
        version, self.probation = self.probation.version, None
        self.state.probation = None
        self.store.save(self.state)
        if verdict == "passed":
            event(log, logging.INFO, "remote_config_probation_passed", version=version)
            return
        self.rollback(verdict)

    def rollback(self, why: str) -> None:
        """Back to the last good configuration (the local file if none), recorded."""
        assert self.host is not None
        target = self.state.last_good
        loaded = self._load(target) if target is not None and target.source == "remote" else None
        if loaded is None:
            self.local = load_checked(self.local_path)
            loaded = (self._local_source(), self.local)
        self.host.switch(loaded[1])
        self.state.effective = loaded[0]
        self.state.remote = loaded[0] if loaded[0].source == "remote" else None
        self.store.save(self.state)
        event(
            log,
            logging.ERROR,
            "remote_config_rolled_back",
            reason=why,
            to=loaded[0].source,
            version=loaded[0].version,
        )
        self._record("rolled_back", loaded[0], why)

    # --- local edits and the pin ----------------------------------------------------------
    def local_reload(self, local: Config) -> None:
        """SIGHUP: the local file as it is now wins if it was edited (or is pinned); else the
        remote document in force stays (read again)."""
        assert self.host is not None
        self.local, digest = local, file_digest(self.local_path) or sha256_hex(b"")
        edited, self.local_digest = digest != self.local_digest, digest
        if edited:  # documents issued before this lose to it (decide.check)
            self.state.local_edited_at = _now_ms()
        remote = self.state.remote
        if remote is not None and not edited and not self.store.pinned:
            loaded = self._load(remote)
            if loaded is not None:
                self.host.switch(loaded[1])
                return
        self.host.switch(local)
        self.probation = None
        reason = "local file reloaded"
        if remote is not None:
            reason = f"local file edited after remote version {remote.version}: the local file wins"
        self.state.remote = None
        previous, self.state.effective = self.state.effective, self._local_source()
        self.store.save(self.state)
        if previous is None or previous.digest != digest:
            event(
                log,
                logging.WARNING if remote else logging.INFO,
                "config_local_applied",
                reason=reason,
            )
            self._record("applied", self.state.effective, reason)

    def _check_pin(self) -> None:
        pinned = self.store.pinned
        if pinned == self.state.pinned or self.host is None:
            return
        self.state.pinned = pinned
        self._seen_refused.clear()  # refused as pinned: considered afresh
        for fetcher in self._fetchers:
            fetcher.refetch()
        if pinned and self.state.remote is not None:
            self.local = load_checked(self.local_path)
            self.host.switch(self.local)
            self.probation, self.state.remote = None, None
            self.state.effective = self._local_source()
        self.store.save(self.state)
        reason = (
            "pinned: the local file is in force, remote documents refused"
            if pinned
            else "unpinned: remote documents accepted again"
        )
        event(log, logging.WARNING, "config_pinned" if pinned else "config_unpinned")
        self._record("pinned", self.state.effective or self._local_source(), reason)


def _body(outcome: str, src: Source, reason: str, log_level: Any = None) -> dict[str, Any]:
    return {
        "version": src.version,
        "digest": src.digest,
        "source": src.source,
        "signed_by": src.kid,
        "outcome": outcome,
        "reason": reason[:500],
        "log_level": log_level,
    }


def load_kept(store: RemoteStore, local_path: Path, src: Source) -> tuple[Source, Config] | None:
    """A remote document kept in the folder, as a configuration (None: gone, damaged or no
    longer valid: logged)."""
    text = store.read_document(src)
    if text is None:
        event(log, logging.ERROR, "remote_config_file_damaged", version=src.version)
        return None
    try:
        as_path = local_path.with_name(f"remote-config-v{src.version}.toml")
        return src, load_checked_bytes(text.encode("utf-8"), as_path)
    except Exception as exc:
        event(
            log,
            logging.ERROR,
            "remote_config_invalid_now",
            version=src.version,
            error=str(exc)[:300],
        )
        return None


def _wake_at(delay_s: float, wake: Callable[[], None]) -> None:
    """Wake the service's loop in ``delay_s`` (a timer thread that ends then)."""
    timer = threading.Timer(delay_s + 0.05, wake)
    timer.daemon = True
    timer.start()


def _now_ms() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"
