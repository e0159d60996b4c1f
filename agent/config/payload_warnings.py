"""What a configuration that seals an older payload version loses (``config validate`` warns).

Version 3 is the current payload (docs/protocol.md): it alone carries the signed clock flag
(``unsynced``) and each readings batch's link to the station descriptor it was taken under.
Versions 1 and 2 are still sealed on request, for a receiver that reads nothing newer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from agent.config.model import Config

CURRENT_PAYLOAD_VERSION = 3


def payload_version_warnings(config: Config) -> list[str]:
    """A warning naming what is lost when ``[buffer] payload_version`` is below the current one;
    none when it is current."""
    version = config.buffer.payload_version
    if version >= CURRENT_PAYLOAD_VERSION:
        return []
    lost = (
        "the signed clock flag (`unsynced`: which readings were taken while the station's clock "
        "was not synchronized) and the link from each readings batch to the station descriptor "
        "it was taken under"
    )
    if version == 1:
        lost += ", and batches are ~10x larger (one object per reading)"
    return [
        f"buffer.payload_version = {version}: new batches are sealed as version {version}, "
        f"which loses {lost}; set payload_version = {CURRENT_PAYLOAD_VERSION} (the default) "
        f"unless the warehouse reads only version {version} (docs/protocol.md)"
    ]
