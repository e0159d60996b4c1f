"""What a remote document may not change: the parts of the configuration that stay local.

The signing key's path, the buffer's path, the keys the station pins (every transport's
``ack_keys``, ``[remote_config] keys``) and the station page's token. A transport the local file
does not have may pin only a key file the local file pins.
"""

from __future__ import annotations

from typing import Any

from agent.config.model import Config


def local_only_change(local: Config, remote: Config) -> str | None:
    """The first local-only part ``remote`` changes, in words; None if none."""
    if remote.station.id != local.station.id:
        return f"station.id {remote.station.id!r} is not this station's ({local.station.id!r})"
    if remote.signing.key != local.signing.key:
        return "signing.key is local only"
    if remote.buffer.path != local.buffer.path:
        return "buffer.path is local only"
    if _keys(remote) != _keys(local):
        return "remote_config.keys is local only"
    pinned = {t.name: _ack_keys(t) for t in local.transports}
    for t in remote.transports:
        keys = _ack_keys(t)
        if t.name in pinned and keys != pinned[t.name]:
            return f"transports {t.name!r}: ack_keys is local only"
        if t.name not in pinned and keys not in pinned.values():
            return f"transports {t.name!r}: ack_keys must be one the local file pins"
    if _web_token(remote) != _web_token(local):
        return "web.token_file (the page's token) is local only"
    return None


def _keys(config: Config) -> Any:
    return config.remote_config.keys if config.remote_config is not None else None


def _ack_keys(section: Any) -> Any:
    return getattr(section, "ack_keys", None)


def _web_token(config: Config) -> tuple[Any, Any]:
    web = config.web
    if web is None:
        return None, None
    token = web.token.get_secret_value() if web.token is not None else None
    return web.token_file, token
