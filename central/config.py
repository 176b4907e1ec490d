"""Central service settings: typed, validated, from CLI flags, env (SMARTGATE_CENTRAL_*) or YAML."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
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
    site: str = Field(
        default="+", pattern=r"^(\+|[A-Za-z0-9_-]{1,64})$",
        description="site to subscribe to; + for all (the generated broker ACL lets central "
        "read one site only)",
    )
    mqtt_tls: bool = Field(
        default=False, description="connect to the broker over TLS (port usually 8883); "
        "implied by any mqtt_tls_* file",
    )
    mqtt_tls_ca_file: Path | None = Field(
        default=None, description="CA certificate (PEM) that signed the broker's; none: system CAs"
    )
    mqtt_tls_cert_file: Path | None = Field(
        default=None, description="central's client certificate (PEM), for a broker that "
        "requires one; goes with mqtt_tls_key_file",
    )
    mqtt_tls_key_file: Path | None = Field(
        default=None, description="private key (PEM) of mqtt_tls_cert_file"
    )
    mqtt_acl_file: Path | None = Field(
        default=None, description="the mosquitto ACL `smartgate broker config` wrote: central "
        "then knows which node serves each lane and rejects a passage, lane status or ack that "
        "names another node (node_mismatch)",
    )
    http_host: str = Field(default="127.0.0.1", description="HTTP listen address")
    http_port: int = Field(default=8000, ge=1, le=65535, description="HTTP listen port")
    data_dir: Path = Field(default=Path("data"), description="where files (images) are kept")
    rules_file: Path | None = Field(
        default=None, description="site matching rules (YAML/TOML, central/domain/rules.py); none: defaults"
    )
    fee_table_file: Path | None = Field(
        default=None, description="border-gate fee table (YAML/TOML); none: the illustrative one"
    )
    site_file: Path | None = Field(
        default=None,
        description="site layout for journeys (YAML, central/domain/site.py: lane roles, zones "
        "with capacities, alert levels, dispatch); none: the default yard → inspection → border",
    )
    yard_webhook_url: str | None = Field(
        default=None, pattern=r"^https?://",
        description="POST every yard event (capacity, overstay, call, journey) here as JSON",
    )
    yard_webhook_secret: SecretStr | None = Field(
        default=None, description="signs webhook bodies: X-SmartGate-Signature: sha256=<HMAC>"
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
    # --- HTTP limits and exposure (central/http_guard.py, docs/deploy.md) -----------------------
    max_body_bytes: int = Field(
        default=1024 * 1024, ge=4096, le=64 * 1024 * 1024,
        description="largest request body of a route without its own limit (sign-in, forms, "
        "decisions); larger: 413 before it is read",
    )
    max_json_import_bytes: int = Field(
        default=16 * 1024 * 1024, ge=4096, le=1024 * 1024 * 1024,
        description="largest JSON body of POST /api/declarations (parsed whole)",
    )
    max_csv_import_bytes: int = Field(
        default=1024 * 1024 * 1024, ge=4096,
        description="largest CSV upload of POST /api/declarations/import (streamed in batches)",
    )
    forwarded_allow_ips: str = Field(
        default="",
        description="comma-separated addresses of reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto central believes (uvicorn forwarded_allow_ips); empty: none, the "
        "client address is the TCP peer's",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="bearer token that may read /metrics and the full /api/health (besides a "
        "signed-in user or API token); anonymous callers get only /api/health's status",
    )
    # --- evidence images (central/evidence, docs/evidence.md) ---------------------------------
    evidence_store: Literal["filesystem", "s3"] = Field(
        default="filesystem", description="where evidence JPEGs are kept: local files or S3"
    )
    evidence_dir: Path | None = Field(
        default=None, description="filesystem store folder; none: data_dir/evidence"
    )
    evidence_s3_url: str | None = Field(
        default=None, description="S3 store endpoint, e.g. https://minio.local:9000"
    )
    evidence_s3_bucket: str = Field(default="smartgate-evidence", description="S3 store bucket")
    evidence_s3_access_key: str | None = Field(default=None, description="S3 store access key")
    evidence_s3_secret_key: SecretStr | None = Field(
        default=None, description="S3 store secret key"
    )
    evidence_s3_region: str | None = Field(default=None, description="S3 store region, if any")
    evidence_max_image_bytes: int = Field(
        default=8 * 1024 * 1024, ge=64 * 1024, le=64 * 1024 * 1024,
        description="largest evidence image an edge may upload (bytes)",
    )
    retention_cleared_days: int = Field(
        default=90, ge=1,
        description="days a passage cleared by the rules keeps its images and plate reads",
    )
    retention_reviewed_days: int = Field(
        default=5 * 365, ge=1,
        description="days a flagged or officer-reviewed passage keeps them after it was closed "
        "(its last officer decision); open cases and legal holds are never purged",
    )
    retention_purge_interval_s: float = Field(
        default=3600.0, ge=0,
        description="how often the HTTP process runs the retention purge; 0: only by "
        "`smartgate evidence purge`",
    )

    @model_validator(mode="after")
    def _mqtt_tls_files(self) -> CentralSettings:
        if (self.mqtt_tls_cert_file is None) != (self.mqtt_tls_key_file is None):
            raise ValueError("mqtt_tls_cert_file and mqtt_tls_key_file go together")
        for name in ("mqtt_tls_ca_file", "mqtt_tls_cert_file", "mqtt_tls_key_file",
                     "mqtt_acl_file"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: {path} is not a readable file")
        if any(getattr(self, n) is not None for n in ("mqtt_tls_ca_file", "mqtt_tls_cert_file")):
            self.mqtt_tls = True
        return self

    @model_validator(mode="after")
    def _s3_complete(self) -> CentralSettings:
        if self.evidence_store == "s3":
            missing = [name for name in ("evidence_s3_url", "evidence_s3_access_key",
                                         "evidence_s3_secret_key") if getattr(self, name) is None]
            if missing:
                raise ValueError(f"evidence_store s3 needs {', '.join(missing)}")
        return self
