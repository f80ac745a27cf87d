"""The `rmgr` command: db upgrade, demo --no-serve, error handling, registered commands."""
from __future__ import annotations

import re

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from resource_mgr import migrate
from resource_mgr.customers.models import Service, ServiceUnit
from resource_mgr.errors import Invalid
from resource_mgr.inventory.models import Coverage, Device, LocalNetwork
from resource_mgr.occupancy.models import Unit
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


def test_demo_no_serve_loads_the_network_and_prints_a_working_token(db, database_url):
    result = run(["demo", "--no-serve", "--port", "8123"], RMGR_DATABASE_URL=database_url)
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:8123/api/v1" in result.output
    assert "http://127.0.0.1:8123/api/v1/docs" in result.output
    token = re.search(r"Token: (\S+)", result.output).group(1)
    with db.read_session() as s:
        me = principal_for_token(s, token)
        assert me.roles >= {Role.ADMIN} and me.local_network_ids is None
        assert s.scalar(select(LocalNetwork.code)) == "GZ"
        types = set(s.scalars(select(Device.device_type)))
        assert {"olt", "splitter", "pstn_switch", "dslam"} <= types
        assert s.scalar(select(func.count()).select_from(Coverage)) >= 4
        services = s.scalars(select(Service)).all()
        assert len(services) == 4 and {sv.product for sv in services} == {"ftth_broadband", "pots"}
        for sv in services:
            units = [s.get(Unit, su.unit_id) for su in s.scalars(
                select(ServiceUnit).where(ServiceUnit.service_id == sv.id).order_by(ServiceUnit.seq))]
            assert len(units) >= 8
            assert all(u.effective_occupancy() == Occupancy.OCCUPIED for u in units)
            assert all(u.service_id == sv.id for u in units if not u.shared)
        assert s.scalar(select(func.count()).select_from(Unit).where(Unit.kind == "number")) == 1000
    again = run(["demo", "--no-serve"], RMGR_DATABASE_URL=database_url)
    assert again.exit_code == 0 and "already there" in again.output
    assert re.search(r"Token: (\S+)", again.output).group(1) != token
