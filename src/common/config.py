"""Settings every service shares; each service's own class extends `CommonSettings`.

Settings come from the environment (prefix `ALLIM_`) or a `.env` file, and are built by
a function and passed in, never read from an import-time global.
"""

from __future__ import annotations

from typing import Literal, Self

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"change-me", "changeme", "secret", "dev-secret", ""})


class CommonSettings(BaseSettings):
    """Settings shared by every allim process."""

    model_config = SettingsConfigDict(
        env_prefix="ALLIM_", env_file=".env", extra="ignore", frozen=True
    )

    environment: Literal["development", "test", "production"] = Field(
        "development",
        description="Deployment mode; placeholder secrets are refused outside development.",
    )
    database_url: str = Field(
        "postgresql+asyncpg://allim@127.0.0.1:5432/allim",
        description="SQLAlchemy URL of the PostgreSQL database (asyncpg driver).",
    )
    database_pool_size: int = Field(
        10, ge=1, description="Connections kept in the pool per process."
    )
    kafka_bootstrap: str = Field(
        "127.0.0.1:9092", description="Kafka bootstrap servers, comma separated."
    )
    tracking_secret: SecretStr = Field(
        SecretStr("change-me"), description="HMAC key that signs tracking-link tokens."
    )
    public_base_url: str = Field(
        "http://127.0.0.1:8000",
        description="Public URL of the gateway, used to build tracking links and status URLs.",
    )
    log_level: str = Field("INFO", description="Python logging level.")
    log_json: bool = Field(
        False, description="Log one JSON object a line (production) instead of text."
    )

    @model_validator(mode="after")
    def _refuse_placeholder_secrets(self) -> Self:
        if self.environment == "development":
            return self
        for name, value in self._secrets().items():
            if value.get_secret_value().strip().lower() in PLACEHOLDER_SECRETS:
                raise ValueError(
                    f"Setting 'ALLIM_{name.upper()}' holds a placeholder secret, "
                    f"which is refused when ALLIM_ENVIRONMENT={self.environment}."
                )
        return self

    def _secrets(self) -> dict[str, SecretStr]:
        return {
            name: value
            for name in type(self).model_fields
            if isinstance(value := getattr(self, name), SecretStr)
        }


def settings_table(cls: type[BaseSettings]) -> list[tuple[str, str, str]]:
    """(name, default, meaning) rows for the README's settings table."""
    prefix = cls.model_config.get("env_prefix", "")
    rows = []
    for name, field in cls.model_fields.items():
        default = field.default
        if isinstance(default, SecretStr):
            default = default.get_secret_value()
        rows.append((f"{prefix}{name.upper()}", repr(default), field.description or ""))
    return rows
