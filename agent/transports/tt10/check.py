"""``station-agent check-transports`` for a TT10 transport: can this station put files there?

Steps, each a verdict line; the first failure ends the check:

1. TCP to the server;
2. login (FTPS: certificate verified; SFTP: host key matching ``known_hosts``);
3. the upload directory of the current period (``remote_dir`` filled in for now): there, or made
   as the first upload would make it (an empty directory is the only thing the check may leave);
4. write permission: a small probe file, named like an upload's temporary file
   (``station-agent-check-<random>.txt`` through ``temp_name``, so a receiver that skips
   temporary files skips it too), written, its size read back, then deleted. No TT10 file is
   sent. If the server lets the station write but not delete, the check fails and names the
   probe file left behind.
"""

from __future__ import annotations

import secrets
import time

from agent.transports.check import Verdict, tcp_reachable
from agent.transports.tt10.config import Tt10TransportConfig
from agent.transports.tt10.delivery import RemoteFiles, open_remote, remote_join
from agent.transports.tt10.fileformat import build_file
from core.errors import TransportError

PROBE = b"station-agent check-transports probe: safe to delete\n"


def _probe_name(cfg: Tt10TransportConfig) -> str:
    name = f"station-agent-check-{secrets.token_hex(4)}.txt"
    return cfg.temp_name.format(name=name) if cfg.upload == "rename" else f"{name}.tmp"


def _directory(remote: RemoteFiles, directory: str, verdict: Verdict) -> bool:
    shown = directory or "the login directory"
    try:
        if remote.is_dir(directory):
            return verdict.step(True, f"upload directory {shown} is there")
        remote.makedirs(directory)
        if remote.is_dir(directory):
            return verdict.step(True, f"upload directory {shown} made (as the first upload would)")
    except TransportError as exc:
        return verdict.step(False, f"upload directory {shown}: {exc}")
    return verdict.step(False, f"upload directory {shown} does not exist and cannot be made")


def _write(remote: RemoteFiles, cfg: Tt10TransportConfig, directory: str, v: Verdict) -> bool:
    shown = directory or "the login directory"
    probe = remote_join(directory, _probe_name(cfg))
    try:
        remote.store(probe, PROBE)
    except TransportError as exc:
        return v.step(False, f"write in {shown}: {exc}")
    try:
        size = remote.size(probe)
        remote.delete(probe)
    except TransportError as exc:
        return v.step(False, f"write in {shown}: probe file {probe} written but {exc}; delete it")
    if size != len(PROBE):
        return v.step(False, f"write in {shown}: the server reports {size} byte(s) of {len(PROBE)}")
    return v.step(True, f"write in {shown}: probe file written and deleted (no TT10 file sent)")


def check(cfg: Tt10TransportConfig, station: str, timeout: float) -> Verdict:
    """Connect, log in, find the upload directory and prove the station may write there."""
    verdict = Verdict(cfg.name, f"tt10 {cfg.protocol}")
    port = cfg.port or 0
    if not tcp_reachable(verdict, cfg.host, port, timeout):
        return verdict
    cfg = cfg.model_copy(update={"timeout_s": min(cfg.timeout_s, timeout)})
    login = {"ftp": "", "ftps": ", TLS certificate verified", "sftp": ", host key as pinned"}
    try:
        remote = open_remote(cfg)
    except TransportError as exc:
        verdict.step(False, str(exc))
        return verdict
    try:
        verdict.step(True, f"login as {cfg.username!r} accepted{login[cfg.protocol]}")
        fmt = cfg.file_format()
        now = fmt.period_start(int(time.time() * 1000))
        directory = build_file(fmt, now, []).directory
        if _directory(remote, directory, verdict):
            _write(remote, cfg, directory, verdict)
    finally:
        remote.close()
    return verdict
