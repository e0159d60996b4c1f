"""One way to build a verifying TLS client context from a ``[transports.tls]`` section."""

from __future__ import annotations

import ssl

from agent.support.bounded import read_secret_file
from agent.support.sections import TlsConfig
from core.errors import ConfigError


def client_context(tls: TlsConfig | None) -> ssl.SSLContext:
    """A client context with certificate and host-name verification on (always)."""
    try:
        ctx = ssl.create_default_context(cafile=str(tls.ca_file) if tls and tls.ca_file else None)
        if tls and tls.cert_file and tls.key_file:
            read_secret_file(tls.key_file, "tls.key_file")  # 0600, ours, small: or refused
            password = tls.key_password.get_secret_value() if tls.key_password else None
            ctx.load_cert_chain(str(tls.cert_file), str(tls.key_file), password=password)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise ConfigError(f"TLS files cannot be loaded: {exc}") from None
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    return ctx
