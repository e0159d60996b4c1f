"""``station-agent rotate-key --config FILE``: a new key, sealed into the chain
(``agent.records.rotation.record``).

With the agent running, the command leaves ``station.key.next`` and asks the agent through the
buffer, then waits for its answer; with no agent running it takes the buffer's instance lock and
seals the rotation itself. Prints what it did and where each key file is.
"""

from __future__ import annotations

import argparse
import time
from typing import TYPE_CHECKING

from core.errors import AgentError

if TYPE_CHECKING:  # imported by the command itself: building the parser stays cheap
    from agent.config.model import Config
    from agent.records.rotation.keys import KeyFiles


def rotate_key(config: Config, wait_s: float) -> int:
    """Run the command; returns its exit status (0 sealed, 1 failed, 2 still waiting)."""
    from agent.records.rotation.keys import KeyFiles
    from agent.support.instance_lock import AlreadyRunning, InstanceLock

    files = KeyFiles(config.signing.key)
    _check_chain(config, files)
    lock = InstanceLock(config.buffer.path)
    try:
        lock.acquire()
    except AlreadyRunning:
        return _ask_running_agent(config, files, wait_s)
    try:
        return _rotate_here(config, files)
    finally:
        lock.release()


def _check_chain(config: Config, files: KeyFiles) -> None:
    """Refuse unless the configured buffer exists and its chain is signed by this key: a key is
    handed on only inside the station's own chain (a new buffer would start a chain the
    warehouse does not know, and the real agent would then refuse the new key)."""
    from agent.buffer import Buffer
    from agent.buffer.db import no_buffer_yet
    from agent.records.rotation.state import chain_key

    path = config.buffer.path
    if not path.exists():
        raise AgentError(f"rotate-key: {no_buffer_yet(path)}; nothing was changed")
    buffer = Buffer(path, durability=config.buffer.durability, create=False)
    try:
        named = chain_key(buffer)
    finally:
        buffer.close()
    if named is None:
        raise AgentError(
            f"rotate-key: {path} holds no signed batch yet: start the agent first (its chain "
            "begins with the key the warehouse registered); nothing was changed"
        )
    current = files.load()
    if named[1] != current.kid:
        held = files.holding(named[1])
        where = f"; {held} holds it" if held else ""
        raise AgentError(
            f"rotate-key: {files.key} holds key {current.kid}, but the chain in {path} is "
            f"signed by key {named[1]} from seq {named[0]} on{where}; nothing was changed"
        )


def _next_key(files: KeyFiles):
    new = files.load_next()
    if new is not None:
        print(f"rotate-key: using the new key already in {files.next_key} (kid {new.kid})")
        return new
    new = files.make_next()
    print(f"rotate-key: wrote the new key {files.next_key} (mode 0600), kid {new.kid}")
    return new


def _rotate_here(config: Config, files: KeyFiles) -> int:
    from agent.buffer import Buffer
    from agent.records.descriptor import in_force
    from agent.records.rotation.record import KeyRotation
    from agent.records.rotation.state import read_request, write_request
    from agent.seal.sealing import Sealer
    from agent.support.clock import SystemClock

    buffer = Buffer(config.buffer.path, durability=config.buffer.durability, create=False)
    try:
        sealer = Sealer(
            buffer,
            files.load(),
            config.station.id,
            SystemClock(),
            config.buffer.max_readings_per_batch,
            payload_version=config.buffer.payload_version,
        )
        held = in_force(buffer)  # the readings it seals first name the descriptor in force
        sealer.descriptor_seq = None if held is None else held.seq
        rotation = KeyRotation(config.signing.key, buffer, sealer)
        rotation.settle()
        old = sealer.signer
        record = rotation.rotate(_next_key(files))
        request = read_request(buffer)
        if request is not None and request.get("state") == "asked":
            write_request(buffer, {**request, "state": "failed", "error": "superseded"})
    finally:
        buffer.close()
    _done(files, record.seq, old.kid, sealer.signer.kid, "no agent is running: sealed here")
    return 0


def _ask_running_agent(config: Config, files: KeyFiles, wait_s: float) -> int:
    from agent.buffer import Buffer
    from agent.records.rotation.state import ask, read_request

    buffer = Buffer(config.buffer.path, durability=config.buffer.durability, create=False)
    try:
        old = files.load()
        new = _next_key(files)
        if new.kid == old.kid:
            raise AgentError(f"{files.next_key}: holds the key in force; remove it and run again")
        asked = ask(buffer, new.kid)
        print(f"rotate-key: asked the running agent (waiting up to {wait_s:g} s)")
        deadline = time.monotonic() + wait_s
        while True:
            request = read_request(buffer) or {}
            if request.get("at") != asked["at"]:
                raise AgentError("rotate-key: another rotate-key replaced this request")
            if request.get("state") == "failed":
                raise AgentError(f"the agent did not rotate the key: {request.get('error')}")
            if request.get("state") == "sealed":
                break
            if time.monotonic() >= deadline:
                print(
                    "rotate-key: the agent has not sealed the rotation yet; it will (or the "
                    "agent at its next start); see the log event key_rotated"
                )
                return 2
            time.sleep(0.2)
    finally:
        buffer.close()
    _done(files, request["seq"], old.kid, new.kid, "the running agent sealed it")
    return 0


def _done(files: KeyFiles, seq: int, old_kid: str, new_kid: str, who: str) -> None:
    print(
        f"rotate-key: rotation record sealed at seq {seq} ({who}), signed by the old key "
        f"{old_kid}; every batch from seq {seq + 1} on is signed by the new key {new_kid}"
    )
    print(
        f"rotate-key: {files.key} now holds the new key ({files.jwk} its public key); the old "
        f"one is kept as {files.old_key(old_kid)} until every transport has acknowledged seq "
        f"{seq}, then removed"
    )


def _cmd_rotate_key(args: argparse.Namespace) -> int:
    from agent.config.model import load_config

    return rotate_key(load_config(args.config), args.wait)


def add(sub: argparse._SubParsersAction) -> None:
    """Add this command to the ``station-agent`` command line."""
    p = sub.add_parser(
        "rotate-key",
        help="replace the station's signing key, keeping the chain",
        description="Make a new key (station.key.next beside signing.key) and seal a rotation "
        "record signed by the old key carrying the new public key: the running agent does it "
        "within a second, or this command when no agent runs. Every later batch is signed by "
        "the new key; the old key file is removed once every transport acknowledged the "
        "record. Exit status 0 sealed, 1 failed, 2 the agent has not answered within --wait.",
    )
    p.add_argument("--config", required=True, help="the TOML configuration file")
    p.add_argument(
        "--wait", type=float, default=60.0, help="seconds to wait for the running agent (60)"
    )
    p.set_defaults(func=_cmd_rotate_key)
