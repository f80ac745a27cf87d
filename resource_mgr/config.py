"""Settings: one validated object, from RMGR_* environment variables and an optional TOML file.

Unknown or malformed settings are errors at start-up that name the setting, so a typo in
production (RMGR_DATABSE_URL) fails loudly instead of silently falling back to a default.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ENV_PREFIX = "RMGR_"


class ConfigError(Exception):
    """A setting is unknown or malformed; the message names it."""


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    database_url: str = "sqlite:///rmgr.sqlite"
    # Empty: jobs run in a thread of the API process (embedded default, no broker to install).
    celery_broker_url: str = ""
    celery_result_backend: str = ""
    # Empty: in-memory rate limits (one process); set to redis://... when several API processes run.
    ratelimit_storage_url: str = "memory://"
    ratelimit_default: str = "600/minute"
    max_request_bytes: int = Field(default=50 * 1024 * 1024, gt=0)
    preoccupy_ttl_hours: int = Field(default=72, gt=0)
    # How often expired pre-occupations are swept (Celery beat, or a timer in the embedded server).
    sweep_interval_seconds: int = Field(default=300, ge=1)
    # -- background jobs that survive their runner (docs/jobs.md) --
    # A running job's lease: renewed every third of it while the handler runs; lapsed, the job
    # is taken over (queued again, or failed after `job_max_attempts` claims).
    job_lease_seconds: int = Field(default=60, ge=2)
    job_max_attempts: int = Field(default=3, ge=1)
    # A queued job not sent this long after it was committed is sent by the reaper; one sent but
    # still queued after `job_resend_seconds` (a lost message) is sent again.
    job_send_grace_seconds: int = Field(default=30, ge=1)
    job_resend_seconds: int = Field(default=900, ge=1)
    # How often the reaper runs (Celery beat, or the embedded scheduler).
    job_reap_interval_seconds: int = Field(default=30, ge=1)
    # Without a broker, one serving process at a time runs the sweep and the reaper: it holds
    # this lease in the database and renews it every third of it.
    scheduler_lease_seconds: int = Field(default=30, ge=2)
    # -- end of background jobs --
    number_quarantine_days: int = Field(default=90, ge=0)
    # Trust-based limits: past this many expired pre-occupations the principal's quota drops.
    trust_expired_threshold: int = Field(default=5, ge=1)
    quota_preoccupations: int = Field(default=200, ge=1)
    quota_golden_numbers: int = Field(default=20, ge=0)
    quota_reduced_preoccupations: int = Field(default=20, ge=1)
    quota_reduced_golden_numbers: int = Field(default=2, ge=0)
    # HTTP under load (interfaces/http/load.py): list reads running at once per API process (0: no
    # bound; one more is answered 503 `unavailable` with Retry-After of the next setting), and the
    # statement timeout of a list read on PostgreSQL in milliseconds (0: none).
    list_read_concurrency: int = Field(default=2, ge=0)
    list_read_retry_after_seconds: int = Field(default=1, ge=1)
    list_read_statement_timeout_ms: int = Field(default=15000, ge=0)
    # Connections `rmgr serve` (waitress) keeps open at once; past it new ones, /health's too, wait
    # unaccepted. waitress's own default, 100, is fewer than a busy integration's pool.
    http_connection_limit: int = Field(default=500, ge=1)
    # Bulk imports. Where uploads (POST /imports) wait for their job; empty: rmgr-imports in the
    # system's temp directory. Celery workers on other hosts need a shared directory here.
    upload_dir: str = ""
    # A bundle past these is refused: bytes its archive expands to, data rows in all its files,
    # and how many times its own size an archive of over 64 MiB may expand (a zip bomb).
    import_max_expanded_bytes: int = Field(default=4 * 1024 ** 3, gt=0)
    import_max_rows: int = Field(default=40_000_000, gt=0)
    import_max_compression_ratio: float = Field(default=100.0, gt=1)
    # -- design (path design, optical budget, loop rates: resource_mgr/design) --
    # -- end of design --
    # -- addresses (address tree, search, serving boxes: resource_mgr/addresses) --
    # Drop-length limits (DOMAIN-FACTS: ~100 m inside buildings, ~300 m aerial): an address with
    # no coverage in its tree is served by boxes of that medium within this distance of its point.
    addresses_drop_limit_fibre_m: float = Field(default=100.0, gt=0)
    addresses_drop_limit_copper_m: float = Field(default=300.0, gt=0)
    # A location resolves to the nearest standard address within this distance.
    addresses_resolve_point_m: float = Field(default=100.0, gt=0)
    # A location belongs to the local network of the nearest address or site within this distance.
    addresses_local_network_radius_m: float = Field(default=5000.0, gt=0)
    # Search: a fuzzy match (no exact substring match) needs this share of the query's trigrams.
    addresses_fuzzy_min_share: float = Field(default=0.5, gt=0, le=1)
    # -- end of addresses --
    # -- coverage (qualification, TMF645: resource_mgr/coverage) --
    # An address_text resolves to the best search hit when its text is what was typed, or it
    # scores at least coverage_text_min_score and (unless alone) that much ahead of the next;
    # otherwise 404 with up to coverage_text_suggestions suggestions.
    coverage_text_min_score: float = Field(default=0.8, ge=0)
    coverage_text_margin: float = Field(default=0.1, ge=0)
    coverage_text_suggestions: int = Field(default=5, ge=1, le=50)
    # Device types whose line ports carry an NGN phone over copper (comma-separated).
    coverage_ngn_line_device_types: str = "access_gateway"
    # A location with no standard address near it: how far to look for the nearest box.
    coverage_location_fibre_m: float = Field(default=300.0, gt=0)
    coverage_location_copper_m: float = Field(default=300.0, gt=0)
    # -- end of coverage --
    # -- orders (reservations and services: resource_mgr/orders) --
    # -- end of orders --
    # -- numbers (search, golden numbers: resource_mgr/numbers) --
    # -- end of numbers --
    # -- events (outbox and webhooks: resource_mgr/events) --
    # -- end of events --
    log_level: str = "INFO"
    log_json: bool = False
    secret_key: str = "dev-only-change-me"
    testing: bool = False

    @field_validator("database_url")
    @classmethod
    def _known_backend(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgresql+psycopg2:")):
            raise ValueError("must be a sqlite:/// or postgresql:// URL")
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value[len("postgresql://"):]
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        value = value.upper()
        if value not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
            raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR")
        return value

    @property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")


# RMGR_* variables that are read elsewhere, not settings: the test suite's database and the
# server scripts/make_migration.py uses. Without this, running the suite with
# RMGR_TEST_DATABASE_URL made every load_settings() fail as "unknown setting".
NOT_SETTINGS = frozenset({"CONFIG_FILE", "TEST_DATABASE_URL", "ADMIN_DATABASE_URL", "TEST_CELERY_BROKER_URL"})


def _read_config_file(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"RMGR_CONFIG_FILE: no such file {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"RMGR_CONFIG_FILE: {path} is not valid TOML: {exc}") from None
    except (OSError, UnicodeDecodeError) as exc:  # a directory, no permission, not text
        raise ConfigError(f"RMGR_CONFIG_FILE: cannot read {path}: {exc}") from None


def load_settings(environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build the settings from an optional TOML file (RMGR_CONFIG_FILE), then RMGR_* variables,
    then explicit overrides. Raises ConfigError naming the first bad setting where it was set
    (the variable, or the key in the file)."""
    environ = dict(os.environ if environ is None else environ)
    values: dict[str, Any] = {}
    source: dict[str, str] = {}  # setting -> how to name it in an error
    config_file = environ.get(ENV_PREFIX + "CONFIG_FILE")
    if config_file:
        path = Path(config_file)
        for key, value in _read_config_file(path).items():
            values[key] = value
            source[key] = f"{key} in {path} (RMGR_CONFIG_FILE)"
    for key, raw in environ.items():
        if not key.startswith(ENV_PREFIX) or key[len(ENV_PREFIX):] in NOT_SETTINGS:
            continue
        name = key[len(ENV_PREFIX):].lower()
        if name not in Settings.model_fields:
            raise ConfigError(f"{key}: unknown setting")
        values[name] = raw
        source[name] = key
    for name, value in overrides.items():
        values[name] = value
        source[name] = name
    try:
        return Settings(**values)
    except ValidationError as exc:
        err = exc.errors()[0]
        name = str(err["loc"][0]) if err["loc"] else ""
        where = source.get(name, ENV_PREFIX + name.upper())
        if err["type"] == "extra_forbidden":
            raise ConfigError(f"{where}: unknown setting") from None
        raise ConfigError(f"{where}: {err['msg']}") from None
