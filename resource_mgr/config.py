"""Settings: one validated object, from RMGR_* environment variables and an optional TOML file.

Unknown or malformed settings are errors at start-up that name the setting, so a typo in
production (RMGR_DATABSE_URL) fails loudly instead of silently falling back to a default.
"""
from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal

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
    # Seconds an API process keeps a bearer token's principal without asking the database again
    # (0: ask at every request). A token revoked or a user disabled is refused at once by the
    # process that did it and within this many seconds by every other one (docs/operations.md).
    auth_token_cache_seconds: float = Field(default=5.0, ge=0, le=300)
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
    # GET /numbers counts its matches exactly up to this many; past it X-Total-Count is this
    # bound and X-Total-Count-Capped: true (0: always count them all).
    number_search_count_limit: int = Field(default=0, ge=0)
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
    # Which of several possible paths: "fill" the fullest shared head (PON port, DSLAM) first,
    # or "spread" over the emptiest; and whether paths needing no jumper come first.
    design_policy: Literal["fill", "spread"] = "fill"
    design_prefer_wired: bool = True
    # ONTs per PON port at most, whatever the port's capacity says (a GPON port addresses 128).
    design_max_onts_per_pon: int = Field(default=64, ge=1, le=1024)
    # Optical budget classes (dB) and which class an OLT's optics are: by the OLT's model first
    # (Device.model), else by its technology (Device.technology), else the default class.
    design_optic_classes: dict[str, float] = {"B+": 28.0, "C+": 32.0, "C++": 35.0}
    design_optic_class_by_technology: dict[str, str] = {"GPON": "C+", "XGS-PON": "C+"}
    design_optic_class_by_model: dict[str, str] = {}
    design_optic_class_default: str = "C+"
    # Losses of a would-be path: PLC splitter insertion loss by ratio (max), fibre per km, each
    # connection by its kind (patch/jumper: a connector pair; splice/fixed: a fusion splice), the
    # connectors at both ends (OLT port, ONT), and the safety margin.
    design_splitter_loss_db: dict[str, float] = {
        "2": 4.3, "4": 7.4, "8": 10.7, "16": 13.9, "32": 17.2, "64": 21.5, "128": 25.5}
    design_fibre_db_per_km: float = Field(default=0.35, ge=0)
    design_connection_loss_db: dict[str, float] = {"patch": 0.75, "jumper": 0.75, "splice": 0.1, "fixed": 0.1}
    design_end_connectors: int = Field(default=2, ge=0)
    design_connector_db: float = Field(default=0.75, ge=0)
    design_margin_db: float = Field(default=3.0, ge=0)
    # Top downstream rate a subscriber gets per PON technology, and on a LAN switch port (Mbit/s).
    design_pon_rate_mbps: dict[str, float] = {"GPON": 1000.0, "XGS-PON": 10000.0}
    design_lan_rate_mbps: float = Field(default=1000.0, gt=0)
    # DSL downstream by loop length on 0.4 mm pairs: [metres, Mbit/s] points, interpolated;
    # past the last point the technology does not reach. Other gauges count by their loop
    # resistance (ohm/km) against 0.4 mm: a 0.5 mm metre is 95/148 of a 0.4 mm metre.
    design_adsl_rate_table: list[tuple[float, float]] = [
        (300, 25), (600, 24), (900, 23), (1200, 22), (1500, 21), (1800, 19), (2100, 16), (3000, 8),
        (4500, 3), (5200, 1.5)]
    design_vdsl_rate_table: list[tuple[float, float]] = [(300, 90), (500, 60), (1000, 37), (1500, 20)]
    design_loop_ohm_per_km: dict[str, float] = {"0.4": 148.0, "0.5": 95.0, "0.6": 65.8, "0.9": 29.2}
    design_pots_max_loop_m: float = Field(default=6000.0, gt=0)
    # Head ports a technology may use, by the port's technology; the LAN switch of a building
    # stands within this distance of the building's point.
    design_head_technologies: dict[str, list[str]] = {
        "ADSL": ["ADSL2+"], "VDSL": ["VDSL2"], "POTS": ["PSTN", "NGN"]}
    design_lan_switch_max_m: float = Field(default=60.0, gt=0)
    # How long a process keeps how full each head device at an exchange is (the policy's order
    # among DSLAMs / switches); 0: counted for every design.
    design_head_stats_seconds: float = Field(default=30.0, ge=0)
    # Serving boxes looked at per design, and how far free_capacity counts (qualify).
    design_max_boxes: int = Field(default=10, ge=1)
    design_free_capacity_cap: int = Field(default=200, ge=1)
    # Unit states a process keeps for design (following the change feed; past it all are
    # forgotten and read again); also bounds what is kept per address. 0: keep none.
    design_state_cache_units: int = Field(default=300_000, ge=0)
    # Units whose topology a process keeps for design; past it, it starts again from nothing.
    design_topology_cache_units: int = Field(default=400_000, ge=1000)
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
    # Search over HTTP is a counter's interactive read, not a list read: at most this many run at
    # once per API process (0: no bound); one more waits up to addresses_search_wait_ms for a slot,
    # then is answered 503 `unavailable`.
    addresses_search_concurrency: int = Field(default=4, ge=0)
    addresses_search_wait_ms: int = Field(default=5000, ge=0)
    # -- end of addresses --
    # -- coverage (qualification, TMF645: resource_mgr/coverage) --
    # An address_text resolves to the best search hit when its text is what was typed, or it
    # scores at least coverage_text_min_score and (unless alone) that much ahead of the next;
    # otherwise 404 with up to coverage_text_suggestions suggestions.
    coverage_text_min_score: float = Field(default=0.8, ge=0)
    coverage_text_margin: float = Field(default=0.1, ge=0)
    coverage_text_suggestions: int = Field(default=5, ge=1, le=50)
    # Switches whose line ports carry an NGN phone over copper: by device type or by the
    # device's technology (comma-separated lists).
    coverage_ngn_line_device_types: str = "access_gateway"
    coverage_ngn_line_technologies: str = "NGN"
    # A location with no standard address near it: how far to look for the nearest box.
    coverage_location_fibre_m: float = Field(default=300.0, gt=0)
    coverage_location_copper_m: float = Field(default=300.0, gt=0)
    # -- end of coverage --
    # -- orders (reservations and services: resource_mgr/orders) --
    # How long a reservation holds its units, per action, unless the request's ttl_hours says
    # otherwise (at most orders_max_ttl_hours). A new install's default is preoccupy_ttl_hours.
    orders_ttl_move_hours: int = Field(default=72, gt=0)
    orders_ttl_change_hours: int = Field(default=72, gt=0)
    orders_ttl_remove_hours: int = Field(default=168, gt=0)
    orders_max_ttl_hours: int = Field(default=720, gt=0)
    # A use case that meets a deadlock, a serialization failure or a stale row is run again from
    # the start this many times (with a short random pause) before the client sees 503.
    orders_retry_attempts: int = Field(default=8, ge=1)
    # -- end of orders --
    # -- numbers (search, golden numbers: resource_mgr/numbers) --
    # -- end of numbers --
    # -- events (outbox and webhooks: resource_mgr/events) --
    # A webhook POST waits this long for an answer; past it the attempt failed (and is retried).
    event_delivery_timeout_seconds: float = Field(default=10.0, gt=0)
    # Retries back off exponentially: base × 2^(attempt − 1) seconds, never more than the max delay.
    event_retry_base_seconds: float = Field(default=5.0, gt=0)
    event_retry_max_delay_seconds: float = Field(default=1800.0, gt=0)
    # A delivery is given up (failed, listed for admins) after this many attempts or this many
    # hours after it was queued, whichever comes first.
    event_max_attempts: int = Field(default=50, ge=1)
    event_give_up_hours: float = Field(default=24.0, gt=0)
    # How often due retries (and events whose kick was lost) are looked for: Celery beat, or the
    # embedded scheduler.
    event_poll_seconds: float = Field(default=5.0, gt=0)
    # Deliveries finished (delivered or given up) this many days ago are forgotten, and so are
    # the events of then that no delivery needs (the operation log keeps the changes themselves).
    event_keep_days: float = Field(default=30.0, gt=0)
    # -- end of events --
    # -- transport --
    # -- end of transport --
    # -- topology --
    # Routes kept per service or head device (primary first): a ring or a protected line has a
    # handful; the bound only stops a meshed metro from listing thousands.
    topology_max_routes: int = Field(default=16, ge=1, le=1000)
    # More feed rows than this since the last look: build the graph again (cheaper than applying).
    topology_rebuild_rows: int = Field(default=200_000, ge=1000)
    # -- end of topology --
    # -- faults --
    # An unknown device or port in an alarm: how many close names the 404 offers, and how alike
    # (rapidfuzz WRatio, 0–100) a name must be to be offered.
    fault_close_names: int = Field(default=5, ge=0, le=50)
    fault_close_names_cutoff: float = Field(default=60.0, ge=0, le=100)
    # -- end of faults --
    # -- cutovers --
    # The new units a locked cutover pre-occupies stay held until its window ends plus this
    # grace (a night's work that runs late can still be applied).
    cutover_grace_hours: float = Field(default=24.0, gt=0)
    # Rows one mapping may have (an upload, a JSON body).
    cutover_max_rows: int = Field(default=50_000, ge=1)
    # Rows between two progress reports of an apply or rollback job.
    cutover_batch_rows: int = Field(default=500, ge=1)
    # A pause after each batch (testing: lets a test kill the worker mid-apply); 0 in production.
    cutover_batch_pause_seconds: float = Field(default=0.0, ge=0)
    # -- end of cutovers --
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
