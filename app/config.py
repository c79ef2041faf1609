"""Settings, read from the environment (prefix ``PREFSTUDIO_``) or a ``.env`` file."""

from __future__ import annotations

from functools import lru_cache
from ipaddress import IPv4Network, IPv6Network, ip_network
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET = "dev-only-insecure-secret-key-change-me"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PREFSTUDIO_", env_file=".env", extra="ignore")

    # "demo" and "dev" may run without a secret (then a fixed, public one); "production" and "test" refuse to
    # start without a strong one.
    environment: Literal["demo", "dev", "test", "production"] = "production"
    database_url: str = f"sqlite:///{ROOT / 'prefstudio.db'}"
    secret_key: str | None = None

    session_idle_minutes: int = 8 * 60
    session_max_hours: int = 7 * 24
    # Failed logins: one account from one address gets a few free tries, then waits that double from
    # login_backoff_seconds (at most the window); one account from all addresses, or one address across all
    # accounts, has a far higher limit, and an address the account has logged in from before is not held by the
    # account's limit (so guessing from many addresses does not lock the owner out).
    login_max_failures_per_pair: int = 5
    login_backoff_seconds: int = 30
    login_max_failures_per_account: int = 100
    login_max_failures_per_ip: int = 20
    login_failure_window_minutes: int = 15
    # Proxies whose X-Forwarded-For (and -Proto) is believed: comma-separated addresses or networks
    # ("10.0.0.1, 172.16.0.0/12"). Empty: none, the peer address is the client's.
    trusted_proxies: str = ""
    # Only the import routes take bodies this large, and only once the caller is known to be the project's admin.
    max_upload_mb: int = 200
    # Every other body, whatever its content type (forms and JSON are parsed in memory): the largest real one is a
    # project's guidelines (100k chars).
    max_body_mb: int = 16
    # Origins (comma-separated "https://host[:port]") whose images markdown may show (model output, prompts,
    # guidelines are untrusted). Empty: none; an image elsewhere shows as a link. Never list this app's own origin.
    markdown_image_origins: str = ""
    # Slow clients (`prefstudio serve`, see app.kit.server): a request's headers (at most request_max_header_kb)
    # must arrive within request_header_timeout_seconds of the connection or the previous answer; its body within
    # request_body_timeout_seconds plus a second per request_body_min_kb_per_second KB. Idle kept-alive
    # connections close after keep_alive_timeout_seconds; past max_connections (0: no limit) new requests get 503.
    request_header_timeout_seconds: float = 20
    request_body_timeout_seconds: float = 30
    request_body_min_kb_per_second: float = 50
    request_max_header_kb: int = 64
    keep_alive_timeout_seconds: int = 5
    max_connections: int = 1000
    sqlite_busy_timeout_ms: int = 30_000
    # A server process moves what start-up made out of the garbage collector's sight (see app.main). Off where
    # apps start and stop inside one long process (the tests): each start would collect that process's whole heap.
    gc_freeze: bool = True
    # Snapshot files live here (written to a temporary name, then renamed into place).
    data_dir: Path = ROOT / "data"
    # Exports and snapshots pause while people's requests are in flight on this machine, at most this long at a
    # time before they make some progress anyway (0: never pause). See app.kit.activity.
    export_yield_ms: int = 100
    # Live exports at once (each runs processes of its own): in this server process, and per export token or
    # admin; beyond them 503 / 429 with Retry-After. Snapshot file downloads are not counted.
    export_max_concurrent: int = 4
    export_max_per_token: int = 2
    # Model servers on loopback, private (RFC 1918, ULA, CGNAT) addresses or names resolving to them; unset:
    # allowed in demo/dev/test, refused in production (compose sets it for http://vllm:8000). Link-local and
    # cloud-metadata addresses are refused whatever this says.
    allow_private_model_servers: bool | None = None
    # Webhook receivers on loopback or private addresses, or on this machine's own addresses (see app.webhooks.urls).
    # Off in every environment: a webhook URL is one more way to make the app send requests inside its network.
    allow_private_webhooks: bool = False
    # /metrics (app.ops) answers only "Authorization: Bearer <metrics_token>" or a client in metrics_allow
    # (comma-separated addresses or networks, as trusted_proxies); neither set: it is a 404 for everybody.
    metrics_token: SecretStr | None = None
    metrics_allow: str = ""
    # Per-project series (queue depth, judgments per minute) for the newest this many projects.
    metrics_max_projects: int = Field(default=100, ge=0)
    # "text": the usual log lines; "json": one JSON object a line, and one line per request (app.ops.logs).
    log_format: Literal["text", "json"] = "text"

    @model_validator(mode="after")
    def _require_secret_outside_dev(self) -> Settings:
        if self.environment not in ("demo", "dev"):
            if not self.secret_key:
                raise ValueError("PREFSTUDIO_SECRET_KEY is required (set PREFSTUDIO_ENVIRONMENT=dev for local work)")
            # The public development key, short keys, and keys of a few repeated characters ("x" * 40).
            if self.secret_key == DEV_SECRET or len(self.secret_key) < 32 or len(set(self.secret_key)) < 8:
                raise ValueError("PREFSTUDIO_SECRET_KEY must be a random string of at least 32 characters")
        elif not self.secret_key:
            self.secret_key = DEV_SECRET
        return self

    @model_validator(mode="after")
    def _private_model_servers_outside_production(self) -> Settings:
        if self.allow_private_model_servers is None:
            self.allow_private_model_servers = self.environment != "production"
        return self

    @model_validator(mode="after")
    def _check_trusted_proxies(self) -> Settings:
        self.trusted_proxy_networks  # noqa: B018 - a bad entry fails at start-up, not at the first login
        return self

    @model_validator(mode="after")
    def _check_metrics_allow(self) -> Settings:
        self.metrics_allow_networks  # noqa: B018 - as above, at start-up
        return self

    @property
    def trusted_proxy_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        try:
            return tuple(
                ip_network(part.strip(), strict=False) for part in self.trusted_proxies.split(",") if part.strip()
            )
        except ValueError as exc:
            raise ValueError(f"PREFSTUDIO_TRUSTED_PROXIES: {exc}") from exc

    @property
    def metrics_allow_networks(self) -> tuple[IPv4Network | IPv6Network, ...]:
        try:
            return tuple(
                ip_network(part.strip(), strict=False) for part in self.metrics_allow.split(",") if part.strip()
            )
        except ValueError as exc:
            raise ValueError(f"PREFSTUDIO_METRICS_ALLOW: {exc}") from exc

    @property
    def is_dev_mode(self) -> bool:
        """Demo or development: may run on the public secret; every page says so."""
        return self.environment in ("demo", "dev")

    @property
    def uses_public_secret(self) -> bool:
        return self.secret_key == DEV_SECRET

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


@lru_cache
def get_settings() -> Settings:
    return Settings()
