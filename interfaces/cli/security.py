"""Identity commands (user, token), registered on the `rmgr` group by main.py.

    rmgr user create alice --role sales --local-network GZ [--password-stdin]
    rmgr user disable alice | rmgr user enable alice
    rmgr token create --role dispatch --local-network '*' --system iom --expires-in-days 365
    rmgr token list [--principal system:iom] [--state active|expired|revoked]
    rmgr token revoke TOKEN_ID

The database comes from the settings (RMGR_DATABASE_URL / RMGR_CONFIG_FILE). Every change is
written to the operation log as principal "cli:<operating-system user>".
"""
from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import click

from resource_mgr.clock import utcnow
from resource_mgr.config import ConfigError, load_settings
from resource_mgr.db import Database
from interfaces.cli import cli_principal
from resource_mgr.errors import DomainError
from resource_mgr.security import services
from resource_mgr.states import Role, TokenState

ROLE_CHOICE = click.Choice(sorted(r.value for r in Role))


_actor = cli_principal


def _run(work: Callable[[Any], Any]) -> Any:
    """One unit of work against the configured database; domain errors become a clean exit 1."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    database = Database(settings.database_url)
    try:
        with database.unit_of_work(principal=_actor()) as uow:
            result = work(uow.session)
            uow.commit()
            return result
    except DomainError as exc:
        where = f" ({exc.field})" if exc.field else ""
        raise click.ClickException(f"{exc.code}{where}: {exc.detail}") from None
    finally:
        database.dispose()


def _networks(values: tuple[str, ...]) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(v.strip() for v in value.split(",") if v.strip())
    return out


@click.group("user", help="Users who log in with a password (POST /api/v1/auth/token).")
def user_group() -> None:
    pass


@user_group.command("create")
@click.argument("username")
@click.option("--role", "roles", multiple=True, required=True, type=ROLE_CHOICE, help="Repeat for several.")
@click.option("--local-network", "local_networks", multiple=True, required=True,
              help="Local network code, or * for all; repeat or comma-separate.")
@click.option("--display-name", default="")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
def user_create(username: str, roles: tuple[str, ...], local_networks: tuple[str, ...], display_name: str,
                password_stdin: bool) -> None:
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    user = _run(lambda s: services.create_user_audited(
        s, _actor(), username=username, password=password, roles=list(roles),
        local_networks=_networks(local_networks), display_name=display_name))
    click.echo(f"created user {user.username} ({user.id}) roles={','.join(user.roles)} "
               f"local_networks={','.join(user.local_networks)}")


@user_group.command("disable")
@click.argument("username")
def user_disable(username: str) -> None:
    _run(lambda s: services.set_user_active(s, _actor(), username, False))
    click.echo(f"disabled user {username}: its tokens no longer work")


@user_group.command("enable")
@click.argument("username")
def user_enable(username: str) -> None:
    _run(lambda s: services.set_user_active(s, _actor(), username, True))
    click.echo(f"enabled user {username}")


@click.group("token", help="Bearer tokens for users and client systems (BSS, IOM, NMS, MSS).")
def token_group() -> None:
    pass


def _parse_expiry(days: int | None, at: str | None) -> datetime | None:
    if days is not None and at:
        raise click.BadParameter("give --expires-in-days or --expires-at, not both", param_hint="--expires-at")
    if days is not None:
        if days <= 0:
            raise click.BadParameter("must be a positive number of days", param_hint="--expires-in-days")
        return utcnow() + timedelta(days=days)
    if at:
        try:
            value = datetime.fromisoformat(at)
        except ValueError:
            raise click.BadParameter(f"{at!r} is not an ISO 8601 time", param_hint="--expires-at") from None
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    return None


@token_group.command("create")
@click.option("--role", "roles", multiple=True, required=True, type=ROLE_CHOICE)
@click.option("--local-network", "local_networks", multiple=True, required=True,
              help="Local network code, or * for all; repeat or comma-separate.")
@click.option("--user", "username", default=None, help="A user (the token stays within the user's grants).")
@click.option("--system", type=click.Choice(services.SYSTEMS), default=None, help="A client system.")
@click.option("--expires-in-days", type=int, default=None)
@click.option("--expires-at", default=None, help="ISO 8601; UTC when no offset is given.")
@click.option("--description", default="")
def token_create(roles: tuple[str, ...], local_networks: tuple[str, ...], username: str | None,
                 system: str | None, expires_in_days: int | None, expires_at: str | None, description: str) -> None:
    if bool(username) == bool(system):
        raise click.UsageError("give exactly one of --user or --system")
    expiry = _parse_expiry(expires_in_days, expires_at)
    token, secret = _run(lambda s: services.create_token_audited(
        s, _actor(), roles=list(roles), local_networks=_networks(local_networks), user=username, system=system,
        expires_at=expiry, description=description))
    click.echo(f"token {token.id} for {token.principal} roles={','.join(token.roles)} "
               f"local_networks={','.join(token.local_networks)} "
               f"expires={token.expires_at.isoformat() if token.expires_at else 'never'}", err=True)
    click.echo("The secret is shown once; store it now:", err=True)
    click.echo(secret)


@token_group.command("revoke")
@click.argument("token_id")
def token_revoke(token_id: str) -> None:
    token = _run(lambda s: services.revoke_token_audited(s, _actor(), token_id))
    click.echo(f"revoked token {token.id} ({token.principal})")


@token_group.command("list")
@click.option("--principal", default=None, help='e.g. "system:bss" or "user:alice"')
@click.option("--state", type=click.Choice([s.value for s in TokenState]), default=None)
@click.option("--json", "as_json", is_flag=True)
def token_list(principal: str | None, state: str | None, as_json: bool) -> None:
    rows = _run(lambda s: [services.token_view(t) for t in services.list_tokens(s, principal=principal, state=state)])
    if as_json:
        click.echo(json.dumps(rows, ensure_ascii=False, indent=2))
        return
    for r in rows:
        click.echo(f"{r['id']}  {r['prefix']}…  {r['principal']:<20} {r['state']:<8} roles={','.join(r['roles'])} "
                   f"networks={','.join(r['local_networks'])} expires={r['expires_at'] or 'never'}"
                   + (f"  {r['description']}" if r["description"] else ""))


COMMANDS: list[click.Command] = [user_group, token_group]
