"""The `rmgr` command: db upgrade, demo --no-serve, error handling, registered commands."""
from __future__ import annotations

import re
from datetime import datetime, timezone

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from resource_mgr import migrate
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.errors import Invalid
from resource_mgr.inventory.models import Coverage, Device, LocalNetwork
from resource_mgr.bulk.generator import LN_CODE
from resource_mgr.bulk.paths import validate_paths
from resource_mgr.occupancy.models import History, Unit
from resource_mgr.security.services import principal_for_token
from resource_mgr.states import Occupancy, Role

from interfaces.cli import bulk, security
from interfaces.cli.main import RmgrGroup, cli


def run(args: list[str], **env: str):
    return CliRunner().invoke(cli, args, env=env, catch_exceptions=False)


def test_db_upgrade_builds_a_fresh_database_and_is_safe_to_repeat(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    first = run(["db", "upgrade"], RMGR_DATABASE_URL=url)
    assert first.exit_code == 0, first.output
    assert "newest revision" in first.output
    assert migrate.is_at_head(url)
    again = run(["db", "upgrade"], RMGR_DATABASE_URL=url)
    assert again.exit_code == 0 and migrate.is_at_head(url)


def test_db_upgrade_on_the_test_database(db, database_url):
    result = run(["db", "upgrade"], RMGR_DATABASE_URL=database_url)
    assert result.exit_code == 0, result.output
    assert migrate.is_at_head(database_url)


@pytest.mark.parametrize("env, says", [
    ({"RMGR_DATABASE_URL": "mysql://nobody@nowhere/db"}, "RMGR_DATABASE_URL"),
    ({"RMGR_DATABSE_URL": "sqlite:///x.sqlite"}, "RMGR_DATABSE_URL: unknown setting"),
    ({"RMGR_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/nothing"}, "database is not reachable"),
])
def test_bad_settings_print_a_message_and_exit_2(env, says):
    result = CliRunner().invoke(cli, ["db", "upgrade"], env=env)
    assert result.exit_code == 2, result.output
    assert says in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_a_domain_refusal_prints_its_code_and_field():
    @click.group(cls=RmgrGroup)
    def group() -> None:
        pass

    @group.command()
    def refuse() -> None:
        raise Invalid("area_code must be 2–4 digits", field="area_code")

    result = CliRunner().invoke(group, ["refuse"])
    assert result.exit_code == 2
    assert "invalid: area_code must be 2–4 digits (field area_code)" in result.output
    assert "Traceback" not in result.output


def test_other_modules_commands_are_registered():
    for command in [*bulk.COMMANDS, *security.COMMANDS]:
        assert cli.commands[command.name] is command
    assert {"db", "serve", "demo"} <= set(cli.commands)


def test_serve_refuses_bad_options():
    result = run(["serve", "--port", "0"])
    assert result.exit_code == 2 and "--port" in result.output


def test_demo_no_serve_loads_the_generated_city_and_prints_a_working_token(db, database_url):
    result = run(["demo", "--no-serve", "--port", "8123"], RMGR_DATABASE_URL=database_url)
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/api/v1" in result.output
    assert "http://127.0.0.1:8123/api/v1/docs" in result.output
    token = re.search(r"Token: (\S+)", result.output).group(1)
    with db.read_session() as s:
        me = principal_for_token(s, token)
        assert me.roles >= {Role.ADMIN} and me.local_network_ids is None
        assert s.scalar(select(LocalNetwork.code)) == LN_CODE
        types = set(s.scalars(select(Device.device_type)))
        assert {"olt", "splitter", "pstn_switch", "dslam"} <= types
        assert s.scalar(select(func.count()).select_from(Coverage)) > 100
        products = set(s.scalars(select(Service.product)))
        assert {"ftth_broadband", "pots"} <= products
        occupied = s.scalar(select(func.count()).select_from(ServiceUnit))
        assert occupied > 1000
        # every service's occupied units form one continuous route, each unit held once
        assert validate_paths(s) == []
        # orders in flight are live: the demo is generated "as of now"
        now = datetime.now(timezone.utc)
        assert any(u.effective_occupancy(now) == Occupancy.PREOCCUPIED
                   for u in s.scalars(select(Unit).where(Unit.occupancy == Occupancy.PREOCCUPIED).limit(50)))
        # the load is one operation-log row attributed to whoever ran the command
        log = s.scalars(select(History).where(History.action == "import")).all()
        # size S: about 10,000 services
        assert len(log) == 1 and log[0].principal.startswith("cli:") and log[0].after["counts"]["service"] > 8000
    again = run(["demo", "--no-serve"], RMGR_DATABASE_URL=database_url)
    assert again.exit_code == 0 and "already there" in again.output
    assert re.search(r"Token: (\S+)", again.output).group(1) != token
