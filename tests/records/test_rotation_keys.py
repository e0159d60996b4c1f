"""The key files of a rotation: a crash while the old key was being copied aside (a torn copy)
does not stop the switch from finishing at the next start."""

from __future__ import annotations

from pathlib import Path

from agent.protocol.keys import generate_key
from agent.records.rotation.keys import KeyFiles


def test_a_torn_copy_of_the_old_key_is_made_again_and_the_switch_finishes(tmp_path: Path) -> None:
    key_path, _jwk = generate_key(tmp_path)
    files = KeyFiles(key_path)
    old = files.load()
    old_pem = key_path.read_bytes()
    new = files.make_next()
    kept = files.old_key(old.kid)
    kept.write_bytes(old_pem[:40])  # killed in the middle of writing the copy
    files.switch(old, new)
    assert kept.read_bytes() == old_pem and (kept.stat().st_mode & 0o777) == 0o600
    assert files.load().kid == new.kid and not files.next_key.exists()
    assert sorted(files.retiring()) == [old.kid]  # no stray temporary file taken for a key
