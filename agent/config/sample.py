"""``station-agent config sample [DRIVER]``: a complete, valid, commented station configuration.

The station, signing, buffer and transport sections are written here; the device sections come
from the drivers' own samples (``drivers/<folder>/sample.toml``, see ``drivers.samples``).
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

_TAIL = """
# ---- transports: each receives every batch and keeps its own acknowledgements -------------
[[transports]]
type = "https"                  # POST {base_url}/stations/{station}/batches, body = the JWS
name = "warehouse"              # used in logs and status
base_url = "https://warehouse.example.gov.vn/api"
"""


def station_sample(drivers: list[str]) -> str:
    """A whole configuration with the sample devices of ``drivers`` (names from the registry)."""
    from drivers.samples import device_sections

    devices = "\n".join(device_sections(name) for name in drivers)
    what = ", ".join(drivers)
    return _HEAD.format(what=what) + devices + _TAIL
