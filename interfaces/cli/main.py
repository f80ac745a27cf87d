"""The `rmgr` command: database upgrade, serving the API, the demo, and the bulk and identity
commands other modules register (`interfaces.cli.bulk.COMMANDS`, `interfaces.cli.security.COMMANDS`).

A bad setting or a refused operation prints its message and exits with status 2, no traceback."""
from __future__ import annotations

import platform
import secrets
import sys
from typing import Any

import click
from sqlalchemy.exc import OperationalError

from resource_mgr.config import ConfigError, Settings, load_settings
from resource_mgr.errors import DomainError

EXIT_USAGE = 2


class RmgrGroup(click.Group):
    """Turns the errors a user can cause (settings, domain refusals, an unreachable database)
    into a one-line message and exit status 2."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            click.echo(f"error: configuration: {exc}", err=True)
        except DomainError as exc:
            field = f" (field {exc.field})" if exc.field else ""
            click.echo(f"error: {exc.code}: {exc.detail}{field}", err=True)
        except OperationalError as exc:
            click.echo(f"error: the database is not reachable or not usable: {exc.orig}", err=True)
        ctx.exit(EXIT_USAGE)


def settings_from(ctx: click.Context) -> Settings:
    obj = ctx.ensure_object(dict)
    if "settings" not in obj:
        obj["settings"] = load_settings()
    return obj["settings"]


@click.group(cls=RmgrGroup)
@click.pass_context
def cli(ctx: click.Context) -> None:
    """Number-and-line resource management (號線資源管理). Settings come from RMGR_* variables
    (RMGR_DATABASE_URL, RMGR_CELERY_BROKER_URL, ...) or the TOML file in RMGR_CONFIG_FILE."""
    ctx.ensure_object(dict)


# -- db -------------------------------------------------------------------------------------------

@cli.group()
def db() -> None:
    """Database schema."""


def _upgrade(settings: Settings) -> None:
    from resource_mgr import migrate

    migrate.upgrade(settings.database_url)


@db.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Bring the schema to the newest revision (safe to run again)."""
    settings = settings_from(ctx)
    _upgrade(settings)
    click.echo(f"database schema is at the newest revision ({_safe_url(settings.database_url)})")


def _safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


# -- serve ----------------------------------------------------------------------------------------

def serve_app(settings: Settings, host: str, port: int, workers: int, threads: int) -> None:
    """Serve with waitress (one process) or gunicorn (several). Without a broker every process
    runs the embedded scheduler; the scheduler lease in the database lets one of them at a time
    sweep and reap (interfaces.tasks.dispatch)."""
    from interfaces.http.app import create_app
    from interfaces.tasks.dispatch import start_embedded_scheduler

    if workers <= 1:
        import waitress

        app = create_app(settings)
        start_embedded_scheduler(app.extensions["rmgr"].db, settings)
        waitress.serve(app, host=host, port=port, threads=threads, ident="rmgr",
                       connection_limit=settings.http_connection_limit)
        return
    if platform.system() != "Linux":
        raise click.UsageError("--workers > 1 needs Linux (gunicorn); use one worker with more --threads")
    from gunicorn.app.base import BaseApplication

    def post_worker_init(worker: Any) -> None:  # in each worker, after the fork: threads of its own
        start_embedded_scheduler(worker.wsgi.extensions["rmgr"].db, settings)

    class Gunicorn(BaseApplication):  # type: ignore[misc]
        def load_config(self) -> None:
            self.cfg.set("bind", f"{host}:{port}")
            self.cfg.set("workers", workers)
            self.cfg.set("threads", threads)
            self.cfg.set("worker_class", "gthread")
            # No gunicorn access log: the app writes one line per request itself (rmgr.access,
            # with the request id and principal); a second, formatted per request, only costs CPU.
            self.cfg.set("post_worker_init", post_worker_init)

        def load(self) -> Any:
            return create_app(settings)

    Gunicorn().run()


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64),
              help="processes (more than one: gunicorn, Linux)")
@click.option("--threads", default=8, show_default=True, type=click.IntRange(1, 256), help="threads per process")
@click.pass_context
def serve(ctx: click.Context, host: str, port: int, workers: int, threads: int) -> None:
    """Serve the HTTP API."""
    settings = settings_from(ctx)
    click.echo(f"serving http://{host}:{port}/api/v1 (docs: http://{host}:{port}/api/v1/docs)")
    serve_app(settings, host, port, workers, threads)


# -- demo -----------------------------------------------------------------------------------------

DEMO_ADMIN = "demo-admin"


def demo_token(database: Any) -> str:
    """An admin token for every local network (a demo-admin user is made the first time)."""
    from sqlalchemy import select

    from resource_mgr.security import services as security
    from resource_mgr.security.models import User
    from resource_mgr.states import Role

    with database.unit_of_work(principal="system:demo") as uow:
        if uow.session.scalar(select(User.id).where(User.username == DEMO_ADMIN)) is None:
            security.create_user(uow.session, username=DEMO_ADMIN, password=secrets.token_urlsafe(24),
                                 roles=[r.value for r in Role], local_networks=["*"], display_name="Demo admin")
        _, secret = security.create_token(uow.session, roles=[r.value for r in Role], local_networks=["*"],
                                          user=DEMO_ADMIN, description="rmgr demo")
        uow.commit()
    return secret


def load_demo(database: Any) -> dict[str, Any]:
    """Load the generator's demo city (size S, orders in flight live from now) through the bulk
    importer, unless the database already holds a local network."""
    import tempfile
    from pathlib import Path

    from sqlalchemy import select
    from tqdm import tqdm

    from interfaces.cli import cli_principal
    from resource_mgr.bulk.generator import LN_CODE, generate_demo
    from resource_mgr.bulk.importer import import_bundle
    from resource_mgr.errors import Invalid
    from resource_mgr.inventory.models import LocalNetwork

    with database.read_session() as session:
        existing = session.scalar(select(LocalNetwork.code).order_by(LocalNetwork.code).limit(1))
    if existing is not None:
        return {"local_network": existing, "created": False}
    with tempfile.TemporaryDirectory(prefix="rmgr-demo-") as tmp:
        stats = generate_demo(Path(tmp))
        with tqdm(total=1, unit="row", desc="load demo", file=sys.stderr) as bar:
            def progress(done: int, total: int) -> None:
                bar.total = max(total, done, 1)
                bar.update(done - bar.n)
            report = import_bundle(database, tmp, progress=progress, principal=cli_principal())
    if not report.written:  # the generator and importer disagree: a defect, say it plainly
        raise Invalid(f"the demo bundle did not import: {report.problems[:3]}")
    return {"local_network": LN_CODE, "created": True, "services": stats.services}


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--serve/--no-serve", default=True, show_default=True, help="serve the API after loading")
@click.pass_context
def demo(ctx: click.Context, host: str, port: int, serve: bool) -> None:
    """Upgrade the schema, load the demo city (generated), print an admin token and serve."""
    from resource_mgr.db import Database

    settings = settings_from(ctx)
    _upgrade(settings)
    database = Database(settings.database_url)
    try:
        summary = load_demo(database)
        token = demo_token(database)
    finally:
        database.dispose()
    what = f"loaded, {summary['services']} services" if summary["created"] else "already there"
    base = f"http://{host}:{port}/api/v1"
    click.echo(f"demo network {summary['local_network']} {what} ({_safe_url(settings.database_url)})")
    click.echo(f"API:   {base}")
    click.echo(f"Docs:  {base}/docs")
    click.echo(f"Token: {token}")
    click.echo(f'Try:   curl -H "Authorization: Bearer {token}" {base}/resources?kind=device')
    sys.stdout.flush()
    if serve:
        serve_app(settings, host, port, 1, 8)


# -- commands of other modules --------------------------------------------------------------------

def _register(commands: list[click.Command]) -> None:
    for command in commands:
        existing = cli.commands.get(command.name or "")
        if existing is not None and existing is not command:
            raise RuntimeError(f"two rmgr commands are named {command.name!r}")
        cli.add_command(command)


def _register_module(name: str) -> None:
    import importlib

    module = importlib.import_module(name)
    _register(list(getattr(module, "COMMANDS", [])))


for _module in ("interfaces.cli.bulk", "interfaces.cli.security", "interfaces.cli.reports"):
    _register_module(_module)
_register_module("interfaces.cli.cutover_plan")


def main() -> None:  # pragma: no cover - console entry alias
    cli(obj={})


if __name__ == "__main__":  # pragma: no cover
    main()
