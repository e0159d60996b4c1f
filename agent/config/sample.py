"""``station-agent config sample [DRIVER | TRANSPORT]``: a complete, valid, commented station
configuration.

The station, signing and buffer sections are written here; the device sections come from the
drivers' own samples (``drivers/<folder>/sample.toml``, see ``drivers.samples``), the transport
section from the transport's (``agent/transports/<type>/sample.toml``; HTTPS unless a transport
is asked for: ``config sample mqtt``).
"""

from __future__ import annotations

_HEAD = """\
# station-agent configuration sample ({what}), printed by `station-agent config sample`.
# Check it with:  station-agent config validate FILE   (relative paths: from the file's folder)
# Every key of [station], [signing], [buffer] and the transports: config/example.toml
# (station-agent docs example.toml); every device option: drivers/<driver>/README.md
# (station-agent docs drivers/<driver>/README.md).

[station]
id = "HN-STACK-001"             # the station id registered at the warehouse: A-Z a-z 0-9 _ . -
name = "Nha may X - ong khoi 1" # free text, for people

[signing]
# Ed25519 private key (PKCS#8 PEM); create it: station-agent keygen --out /var/lib/station-agent
key = "/var/lib/station-agent/station.key"

[buffer]
path = "/var/lib/station-agent/buffer.db"  # SQLite buffer: every reading, batch and ack
retention_days = 60             # keep acknowledged readings this long (legal minimum: 60)

# ---- devices: one [[devices]] section per analyzer or datalogger --------------------------

"""

_TRANSPORTS = """
# ---- transports: each receives every batch and keeps its own acknowledgements -------------
"""


def transport_section(transport: str) -> str:
    """The ``[[transports]]`` section of ``agent/transports/<transport>/sample.toml`` (the
    comment lines above it included; the file's own header left out)."""
    from importlib.resources import files

    text = (files("agent.transports") / transport / "sample.toml").read_text(encoding="utf-8")
    lines = text.splitlines()
    start = lines.index("[[transports]]")
    while start > 0 and lines[start - 1].lstrip().startswith("#"):
        start -= 1
    return "\n".join(lines[start:]).rstrip() + "\n"


def station_sample(drivers: list[str], transport: str = "https") -> str:
    """A whole configuration with the sample devices of ``drivers`` (names from the registry)
    and the sample section of ``transport``."""
    from drivers.samples import device_sections

    devices = "\n".join(device_sections(name) for name in drivers)
    what = ", ".join(drivers) + ("" if transport == "https" else f"; transport {transport}")
    return _HEAD.format(what=what) + devices + _TRANSPORTS + transport_section(transport)
