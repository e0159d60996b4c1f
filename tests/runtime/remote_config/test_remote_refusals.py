"""Documents a real agent refuses, each recorded in the chain with its reason and logged:
forged (a key not pinned), tampered, for another station, oversized, older, replayed, changing
a local-only part, not a configuration ``run`` would start on (issue 32)."""

from __future__ import annotations

import copy
import json

from tests.helpers.remote_config import ConfigKey, RemoteStation, sha256_hex


def _refused(st: RemoteStation, n: int) -> dict:
    """The ``n``-th refusal recorded (1-based)."""
    return st.record(
        lambda b: b["outcome"] == "refused" and _count(st, b) == n, f"refusal {n} recorded"
    )


def _count(st: RemoteStation, body: dict) -> int:
    refused = [b for b in st.records() if b["outcome"] == "refused"]
    return refused.index(body) + 1


def test_forged_tampered_foreign_oversized_older_replayed_and_local_only_are_refused(
    tmp_path, remote_station
):
    stranger = ConfigKey(tmp_path / "other")
    st = remote_station()
    agent = st.start()
    try:
        good = copy.deepcopy(st.data)
        good["buffer"]["seal_interval_s"] = 0.4
        v2 = st.push(2, good)
        st.record(lambda b: b["version"] == 2 and b["outcome"] == "applied", "v2 applied")
        v2_token = st.server.documents[st.id]
        cases = []

        def refuse(token: str | bytes, reason: str, version, digest: str) -> None:
            st.server.serve(st.id, token)
            body = _refused(st, len(cases) + 1)
            cases.append((body, reason, version, digest))

        forged = stranger.sign(st.id, 3, v2)
        refuse(forged, "not_pinned", None, sha256_hex(forged))
        head, payload, sig = st.key.sign(st.id, 3, v2).split(".")
        tampered = f"{head}.{payload}.{sig[:10]}{'A' if sig[10] != 'A' else 'B'}{sig[11:]}"
        refuse(tampered, "bad_signature", None, sha256_hex(tampered))
        foreign = st.key.sign("SOMEONE-ELSE", 3, v2)
        refuse(foreign, "wrong_station", None, sha256_hex(foreign))
        huge = st.key.sign(st.id, 3, v2 + "#" * (97 * 1024) + "\n").encode()
        assert len(huge) > 128 * 1024
        refuse(huge, "oversized", None, sha256_hex(huge[: 128 * 1024 + 1]))  # what was read
        refuse(st.key.sign(st.id, 1, v2), "older", 1, sha256_hex(v2))
        moved = copy.deepcopy(good)
        moved["buffer"]["path"] = str(tmp_path / "elsewhere.db")
        text = st.push(3, moved)
        cases.append((_refused(st, len(cases) + 1), "local_only", 3, sha256_hex(text)))
        broken = copy.deepcopy(good)
        del broken["devices"][0]["host"]
        text = st.push(3, broken)
        cases.append((_refused(st, len(cases) + 1), "invalid", 3, sha256_hex(text)))
        good["buffer"]["seal_interval_s"] = 0.3
        st.push(3, good)
        st.record(lambda b: b["version"] == 3 and b["outcome"] == "applied", "v3 applied")
        refuse(v2_token, "replayed", 2, sha256_hex(v2))
    finally:
        st.stop()
    for body, reason, version, digest in cases:
        assert body["reason"].startswith(reason + ": "), (reason, body)
        assert (body["version"], body["digest"], body["source"]) == (version, digest, "remote")
        assert body["signed_by"] == (st.key.kid if version is not None else None)
    log = agent.text()
    for _, reason, _, _ in cases:
        assert "event=remote_config_refused" in log and f"reason={reason}" in log, reason
    state = json.loads((tmp_path / "buffer.db.remote" / "state.json").read_text())
    assert state["effective"]["version"] == 3 and state["max_version"] == 3
