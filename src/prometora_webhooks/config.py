"""All configuration, read once from the environment and passed explicitly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

ENV_PREFIX = "PROMETORA_WEBHOOKS_"


class ConfigError(Exception):
    """A configuration value is invalid; the message is one line naming the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    database_url: str = "sqlite:///./prometora-webhooks.db"
    admin_token: str | None = None
    secret_key: str | None = None
    public_url: str | None = None
    retry_delays: Annotated[tuple[float, ...], NoDecode] = (60.0, 600.0)
    delivery_timeout: float = Field(default=10.0, gt=0, le=300)
    disable_after: int = Field(default=10, ge=1, le=10_000)
    log_retention_days: float = Field(default=7.0, gt=0, le=3650)
    allow_http: bool = False
    allow_private_networks: bool = False
    ca_bundle: Path | None = None

    # Internal tuning knobs (not part of the public contract).
    worker_concurrency: int = Field(default=512, ge=1, le=10_000)
    worker_per_endpoint_limit: int = Field(default=32, ge=1, le=10_000)
    worker_poll_interval: float = Field(default=0.25, gt=0, le=60)
    purge_interval: float = Field(default=60.0, gt=0)
    worker_defer_seconds: float = Field(default=60.0, gt=0, le=3600)
    # Requests per second (and burst) allowed per store API key in each API process; 0 = off.
    # The admin token (the platform's own backend) is not limited.
    rate_limit: float = Field(default=50.0, ge=0)
    rate_limit_burst: float = Field(default=100.0, ge=1)

    @field_validator("retry_delays", mode="before")
    @classmethod
    def _parse_delays(cls, value: Any) -> Any:
        if isinstance(value, str):
            text = value.strip()
            if not text:
                return ()
            try:
                delays = tuple(float(part) for part in text.split(","))
            except ValueError:
                raise ValueError("expected comma-separated seconds, e.g. 60,600") from None
            return delays
        return value

    @field_validator("retry_delays")
    @classmethod
    def _check_delays(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not all(0 <= d <= 7 * 86400 for d in value):  # also refuses NaN
            raise ValueError("each delay must be between 0 and 604800 seconds")
        if len(value) > 20:
            raise ValueError("at most 20 retries")
        return value

    @field_validator("database_url")
    @classmethod
    def _check_db(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "sqlite+", "postgresql:", "postgresql+", "postgres:")):
            raise ValueError("expected sqlite:///path or postgresql://user:pass@host:port/db")
        return value

    @field_validator("public_url")
    @classmethod
    def _check_public_url(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    "expected an absolute http(s):// URL, e.g. https://hooks.example.com"
                )
        return value

    @field_validator("ca_bundle")
    @classmethod
    def _check_ca(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"no such file: {value}")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def sqlite_path(self) -> Path | None:
        if not self.is_sqlite:
            return None
        rest = self.database_url.split(":///", 1)[-1] if ":///" in self.database_url else ""
        if not rest or rest.startswith(":memory:"):
            return None
        return Path(rest.split("?", 1)[0])

    @property
    def retention_seconds(self) -> float:
        return self.log_retention_days * 86400.0


def load_settings(**overrides: Any) -> Settings:
    """Read the environment (plus explicit overrides); raise ConfigError with one clear line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = str(err["loc"][0]) if err["loc"] else "?"
        name = ENV_PREFIX + field.upper()
        raw = os.environ.get(name)
        shown = (
            f" (got {raw!r})"
            if raw is not None and field not in {"admin_token", "secret_key"}
            else ""
        )
        msg = " ".join(str(err["msg"]).removeprefix("Value error, ").split())
        raise ConfigError(f"invalid {name}{shown}: {msg}") from None
