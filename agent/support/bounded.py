"""Bounded reading of outside data: JSON nesting, response bodies, secret files.

Everything the agent reads from outside (a warehouse's answer, a batch given to ``verify``, a
password file, the signing key) is read through one of these, so no input can make it use
unbounded memory or recursion.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

MAX_ANSWER = 4096  # bytes of a warehouse's answer that are read (the rest is never received)
MAX_SECRET_FILE = 64 * 1024  # a password or a PEM key is a few hundred bytes
MAX_JSON_DEPTH = 8  # the deepest document we read (a batch payload) nests 3 levels
_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_BRACKETS = re.compile(r"[\[\]{}]")


def json_depth(text: str) -> int:
    """How deep arrays and objects nest in ``text`` (brackets inside strings do not count);
    linear time, no recursion, so it can be asked of any input before parsing it."""
    depth = deepest = 0
    for bracket in _BRACKETS.findall(_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def check_json_depth(text: str, max_depth: int = MAX_JSON_DEPTH) -> None:
    """Raise ValueError if ``text`` nests deeper than ``max_depth``."""
    if json_depth(text) > max_depth:
        raise ValueError(f"nested deeper than {max_depth} levels")


def read_secret_file(path: Path, what: str) -> bytes:
    """A secret's file: a regular file owned by this process's user, mode 0600 or stricter
    (no group/other bits), at most 64 KiB. Raises ValueError naming the file and the fix."""
    try:
        # O_NONBLOCK: a FIFO named as a secret must not hang the agent (refused below)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise ValueError(f"{path}: {what} cannot be read: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path}: {what} is not a regular file")
        if info.st_uid != os.geteuid():
            raise ValueError(
                f"{path}: {what} is owned by uid {info.st_uid}, not by the agent's user "
                f"(uid {os.geteuid()}); run: chown {os.geteuid()} {path}"
            )
        if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ValueError(
                f"{path}: {what} is accessible by group/others "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); run: chmod 600 {path}"
            )
        if info.st_size > MAX_SECRET_FILE:
            raise ValueError(
                f"{path}: {what} is {info.st_size} bytes; a secret file is at most "
                f"{MAX_SECRET_FILE} bytes"
            )
        data = f.read(MAX_SECRET_FILE + 1)
    if len(data) > MAX_SECRET_FILE:
        raise ValueError(f"{path}: {what} is larger than {MAX_SECRET_FILE} bytes")
    return data
