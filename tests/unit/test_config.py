"""Settings: defaults, RMGR_* variables, the optional TOML file, and errors that name the setting."""
from __future__ import annotations

from pathlib import Path

import pytest

from resource_mgr.config import ConfigError, Settings, load_settings


def test_defaults() -> None:
    settings = load_settings({})
    assert settings.database_url == "sqlite:///rmgr.sqlite"
    assert settings.is_sqlite
    assert settings.celery_broker_url == ""  # embedded jobs, no broker
    assert settings.ratelimit_storage_url == "memory://"
    assert settings.max_request_bytes == 50 * 1024 * 1024
    assert settings.preoccupy_ttl_hours == 72
    assert settings.number_quarantine_days == 90
    assert settings.log_level == "INFO"
    assert settings.log_json is False
    assert settings.testing is False


def test_environment_is_parsed_and_typed() -> None:
    settings = load_settings({
        "RMGR_MAX_REQUEST_BYTES": "1024",
        "RMGR_PREOCCUPY_TTL_HOURS": "24",
        "RMGR_NUMBER_QUARANTINE_DAYS": "0",
        "RMGR_LOG_JSON": "true",
        "RMGR_TESTING": "1",
        "RMGR_LOG_LEVEL": "debug",
        "RMGR_CELERY_BROKER_URL": "redis://127.0.0.1:6379/0",
    })
    assert settings.max_request_bytes == 1024 and isinstance(settings.max_request_bytes, int)
    assert settings.preoccupy_ttl_hours == 24
    assert settings.number_quarantine_days == 0
    assert settings.log_json is True
    assert settings.testing is True
    assert settings.log_level == "DEBUG"
    assert settings.celery_broker_url == "redis://127.0.0.1:6379/0"


def test_other_environment_variables_are_ignored() -> None:
    settings = load_settings({"PATH": "/usr/bin", "DATABASE_URL": "mysql://nope", "XRMGR_FOO": "1"})
    assert settings.database_url == "sqlite:///rmgr.sqlite"


def test_environment_is_read_from_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RMGR_PREOCCUPY_TTL_HOURS", "12")
    assert load_settings().preoccupy_ttl_hours == 12


def test_variables_for_tools_are_not_settings() -> None:
    # The suite itself runs with RMGR_TEST_DATABASE_URL set; that must not break the app.
    settings = load_settings({"RMGR_TEST_DATABASE_URL": "postgresql://postgres@127.0.0.1/x",
                              "RMGR_ADMIN_DATABASE_URL": "postgresql://postgres@127.0.0.1/postgres"})
    assert settings.database_url == "sqlite:///rmgr.sqlite"


def test_unknown_variable_is_an_error_naming_it() -> None:
    with pytest.raises(ConfigError, match=r"^RMGR_DATABSE_URL: unknown setting"):
        load_settings({"RMGR_DATABSE_URL": "sqlite:///x.sqlite"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RMGR_MAX_REQUEST_BYTES", "abc"),
        ("RMGR_MAX_REQUEST_BYTES", "0"),
        ("RMGR_MAX_REQUEST_BYTES", ""),
        ("RMGR_PREOCCUPY_TTL_HOURS", "-1"),
        ("RMGR_NUMBER_QUARANTINE_DAYS", "-5"),
        ("RMGR_TRUST_EXPIRED_THRESHOLD", "0"),
        ("RMGR_LOG_JSON", "maybe"),
        ("RMGR_LOG_LEVEL", "LOUD"),
        ("RMGR_DATABASE_URL", "mysql://user@host/db"),
        ("RMGR_DATABASE_URL", "postgresql+asyncpg://host/db"),
    ],
)
def test_malformed_value_is_an_error_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({name: value})
    assert str(info.value).startswith(f"{name}: ")


def test_error_does_not_echo_the_value() -> None:
    # Values may be secrets (a database password); the name is enough to find the mistake.
    with pytest.raises(ConfigError) as info:
        load_settings({"RMGR_DATABASE_URL": "mysql://root:s3cret@db/rmgr"})
    assert "s3cret" not in str(info.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://rmgr@db/rmgr", "postgresql+psycopg://rmgr@db/rmgr"),
        ("postgresql+psycopg://rmgr@db/rmgr", "postgresql+psycopg://rmgr@db/rmgr"),
        ("sqlite:////var/lib/rmgr/rmgr.sqlite", "sqlite:////var/lib/rmgr/rmgr.sqlite"),
    ],
)
def test_postgresql_url_uses_the_psycopg_driver(given: str, expected: str) -> None:
    settings = load_settings({"RMGR_DATABASE_URL": given})
    assert settings.database_url == expected
    assert settings.is_sqlite == expected.startswith("sqlite")


def test_config_file(tmp_path: Path) -> None:
    path = tmp_path / "rmgr.toml"
    path.write_text('database_url = "postgresql://rmgr@db/rmgr"\nmax_request_bytes = 2048\nlog_json = true\n')
    settings = load_settings({"RMGR_CONFIG_FILE": str(path)})
    assert settings.database_url == "postgresql+psycopg://rmgr@db/rmgr"
    assert settings.max_request_bytes == 2048
    assert settings.log_json is True


def test_environment_overrides_file_and_explicit_overrides_both(tmp_path: Path) -> None:
    path = tmp_path / "rmgr.toml"
    path.write_text("preoccupy_ttl_hours = 10\nnumber_quarantine_days = 30\n")
    env = {"RMGR_CONFIG_FILE": str(path), "RMGR_PREOCCUPY_TTL_HOURS": "20"}
    settings = load_settings(env)
    assert (settings.preoccupy_ttl_hours, settings.number_quarantine_days) == (20, 30)
    assert load_settings(env, preoccupy_ttl_hours=30).preoccupy_ttl_hours == 30


def test_missing_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^RMGR_CONFIG_FILE: no such file"):
        load_settings({"RMGR_CONFIG_FILE": str(tmp_path / "absent.toml")})


def test_unreadable_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^RMGR_CONFIG_FILE: cannot read"):
        load_settings({"RMGR_CONFIG_FILE": str(tmp_path)})  # a directory


def test_bad_toml(tmp_path: Path) -> None:
    path = tmp_path / "rmgr.toml"
    path.write_text("database_url = \n")
    with pytest.raises(ConfigError, match=r"^RMGR_CONFIG_FILE: .* is not valid TOML"):
        load_settings({"RMGR_CONFIG_FILE": str(path)})


def test_unknown_key_in_config_file_names_the_key_and_file(tmp_path: Path) -> None:
    path = tmp_path / "rmgr.toml"
    path.write_text('databse_url = "sqlite:///x.sqlite"\n')
    with pytest.raises(ConfigError) as info:
        load_settings({"RMGR_CONFIG_FILE": str(path)})
    message = str(info.value)
    assert message.startswith("databse_url in ") and str(path) in message and "unknown setting" in message


def test_malformed_value_in_config_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "rmgr.toml"
    path.write_text('max_request_bytes = "lots"\n')
    with pytest.raises(ConfigError, match=r"^max_request_bytes in .*rmgr.toml"):
        load_settings({"RMGR_CONFIG_FILE": str(path)})


def test_unknown_override_is_an_error() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        load_settings({}, no_such_setting=1)


def test_settings_are_frozen() -> None:
    settings = load_settings({})
    with pytest.raises(Exception):
        settings.database_url = "sqlite:///other.sqlite"  # type: ignore[misc]
    assert isinstance(settings, Settings)
