"""``[web]``: the local station page and ``/metrics``. Off unless the section is present."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from agent.support.sections import Section, resolve_secret

MIN_TOKEN = 16


class WebConfig(Section):
    """Where the station page and the metrics listen (loopback unless told otherwise)."""

    host: str = Field(default="127.0.0.1", min_length=1, max_length=255)
    """``0.0.0.0`` to reach the page from a phone on the station's LAN."""
    port: int = Field(default=8180, ge=0, le=65535)
    """0: any free port (the chosen one is logged as ``web_listening``)."""
    chart_points: int = Field(default=300, ge=10, le=5000)
    """At most this many points per 24 h chart (averaged per time slice)."""
    token_file: Path | None = None
    """A file holding the token (first line, at least 16 characters; a regular file of the
    agent's user, mode 0600, at most 64 KiB) that unlocks the page's actions (requeue
    quarantined batches...). Without it the page and its API are read-only."""
    warehouse_api_url: str | None = Field(default=None, max_length=2048)
    """The warehouse's SensorThings API (``https://…``, its root or its ``/v1.1`` service
    root): the page then links to this station's Thing there (``/v1.1/Things('<station id>')``)."""
    token: SecretStr | None = Field(default=None, exclude=True)
    """Read from ``token_file``; not a key of the configuration file."""

    @model_validator(mode="before")
    @classmethod
    def _no_inline_token(cls, data: object) -> object:
        if isinstance(data, dict) and "token" in data:
            raise ValueError(
                "give the page's token in a file (token_file = PATH, mode 0600), "
                "not in the configuration"
            )
        return data

    @field_validator("warehouse_api_url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        # pydantic's HttpUrl would load importlib.metadata for every command (see test_lazy_models)
        if url is None:
            return None
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname or url != url.strip():
            raise ValueError(f"expected an http:// or https:// URL with a host, got {url!r}")
        if parts.query or parts.fragment or any(c.isspace() for c in url):
            raise ValueError(f"expected a URL without query, fragment or spaces, got {url!r}")
        return url

    @model_validator(mode="after")
    def _read_token(self, info: ValidationInfo) -> WebConfig:
        token = resolve_secret("token", None, None, self.token_file, info)
        self.token = None if token is None else SecretStr(token.get_secret_value().strip())
        if self.token is not None and len(self.token.get_secret_value()) < MIN_TOKEN:
            raise ValueError(
                f"{self.token_file}: token_file holds a token of fewer than {MIN_TOKEN} "
                "characters; write a long random one, e.g.: "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(24))'"
            )
        return self

    @property
    def actions_enabled(self) -> bool:
        """True when a token is configured: the page may offer actions to whoever has it."""
        return self.token is not None
