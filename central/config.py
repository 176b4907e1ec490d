"""Central service settings: typed, validated, from CLI flags, env (SMARTGATE_CENTRAL_*) or YAML."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CentralSettings(BaseSettings):
    """Everything central needs to start; a bad value fails at start naming the key."""

    model_config = SettingsConfigDict(env_prefix="SMARTGATE_CENTRAL_", extra="forbid")

    database_url: str = Field(
        default="sqlite:///data/central.db",
        description="SQLAlchemy URL: sqlite:///path.db or postgresql+psycopg://user:pw@host/db",
    )
    mqtt_host: str = Field(default="127.0.0.1", description="MQTT broker host")
    mqtt_port: int = Field(default=1883, ge=1, le=65535, description="MQTT broker port")
    mqtt_username: str | None = Field(default=None, description="MQTT user name")
    mqtt_password: str | None = Field(default=None, description="MQTT password")
    mqtt_client_id: str = Field(
        default="smartgate-central", description="persistent-session client id (unique per worker)"
    )
    site: str = Field(default="+", description="site to subscribe to; + for all")
    http_host: str = Field(default="127.0.0.1", description="HTTP listen address")
    http_port: int = Field(default=8000, ge=1, le=65535, description="HTTP listen port")
    data_dir: Path = Field(default=Path("data"), description="where files (images) are kept")
    rules_file: Path | None = Field(
        default=None, description="site matching rules (YAML/TOML, central/domain/rules.py); none: defaults"
    )
    fee_table_file: Path | None = Field(
        default=None, description="border-gate fee table (YAML/TOML); none: the illustrative one"
    )
    ingest_batch: int = Field(
        default=50, ge=1, le=1000, description="most queued messages stored in one transaction"
    )
    ingest_workers: int = Field(
        default=0, ge=0, le=64,
        description="`central run`: ingest worker processes (MQTT 5 shared subscriptions, "
        "mosquitto); 0: ingest inside the HTTP process (MQTT 3.1.1, also amqtt)",
    )
    mqtt_session_expiry_s: int = Field(
        default=7 * 86400, ge=60,
        description="MQTT 5 session expiry: how long the broker queues for a stopped worker",
    )
    metrics_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="ingest worker: serve /metrics here (worker k of `central run` uses "
        "metrics_port + k - 1); none: off (the HTTP process serves its own at /metrics)",
    )
    ingest_sqlite_busy_s: float = Field(
        default=30.0, gt=0, le=600,
        description="ingest worker on SQLite: how long a write waits for a lock before it "
        "fails and is retried in place",
    )
    secret_key: SecretStr | None = Field(
        default=None,
        description="keys session and CSRF digests: 32+ random characters; required unless demo",
    )
    session_hours: float = Field(default=12.0, gt=0, le=720, description="how long a sign-in lasts")
    cookie_secure: bool = Field(
        default=True, description="send cookies over HTTPS only; false only for plain-HTTP local use"
    )
    demo_mode: bool = Field(
        default=False, description="demo: allows the printed demo account and a generated secret key"
    )
