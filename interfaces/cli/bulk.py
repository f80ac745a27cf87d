"""Bulk data commands (import, export, generate), registered on the `rmgr` group by main.py."""
import click

COMMANDS: list[click.Command] = []


@click.command("generate")
@click.option("--size", type=click.Choice(["XS", "S", "M", "L"], case_sensitive=False), default="S", show_default=True,
              help="XS ≈ 2k, S ≈ 10k, M ≈ 200k, L ≈ 1M services")
@click.option("--seed", type=int, default=1, show_default=True, help="same seed, same bytes")
@click.option("--as-of", "as_of", default=None,
              help="the network's 'now' (ISO 8601, or 'now'); default a fixed date so output is reproducible")
@click.argument("out", type=click.Path(file_okay=False))
def generate_cmd(size: str, seed: int, as_of: str | None, out: str) -> None:
    """Write a realistic city network (bulk bundle) to the directory OUT."""
    import json
    from datetime import datetime, timezone
    from pathlib import Path

    from tqdm import tqdm

    from resource_mgr.bulk.generator import AS_OF, SIZES, generate

    when = AS_OF
    if as_of == "now":
        when = datetime.now(timezone.utc).replace(microsecond=0)
    elif as_of:
        try:
            when = datetime.fromisoformat(as_of)
        except ValueError:
            raise click.BadParameter("expected ISO 8601, e.g. 2026-01-01T00:00:00+00:00, or 'now'",
                                     param_hint="--as-of") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
    size = size.upper()
    with tqdm(total=SIZES[size].services, unit="svc", desc=f"generate {size}") as bar:
        def progress(done: int, total: int) -> None:
            bar.total = max(total, done)
            bar.update(done - bar.n)
        stats = generate(size, seed, Path(out), progress, as_of=when)
        bar.total = stats.services
        bar.refresh()
    click.echo(json.dumps({k: v for k, v in stats.as_dict().items() if k != "rows"}, ensure_ascii=False))


COMMANDS.append(generate_cmd)


def _settings():
    from resource_mgr.config import ConfigError, load_settings

    try:
        return load_settings()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


def _database():
    from resource_mgr.db import Database

    return Database(_settings().database_url)


def _bar(desc: str):
    from tqdm import tqdm

    bar = tqdm(total=0, unit="row", unit_scale=True, desc=desc, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        if total != bar.total:
            bar.total = total
            bar.refresh()
        bar.update(done - bar.n)
    return bar, progress


@click.command("import")
@click.argument("path", type=click.Path(exists=True))
@click.option("--allow-partial", is_flag=True, help="write the good rows even if some are bad (they are skipped)")
@click.option("--problems", "problems_out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="also write every problem to this file (JSON)")
@click.option("--show", type=int, default=50, show_default=True, help="problems to print")
def import_cmd(path: str, allow_partial: bool, problems_out: str | None, show: int) -> None:
    """Import the bundle at PATH (directory, .zip or .tar) into the database.

    Every row is checked first; by default nothing is written unless every row is good."""
    import json

    from interfaces.cli import cli_principal
    from resource_mgr.bulk.importer import ImportLimits, import_bundle
    from resource_mgr.db import Database

    settings = _settings()
    database = Database(settings.database_url)
    bar, progress = _bar("import")
    try:
        # this process runs nothing but the import: the garbage collector may rest meanwhile
        report = import_bundle(database, path, allow_partial=allow_partial, progress=progress,
                               principal=cli_principal(), limits=ImportLimits.from_settings(settings),
                               own_process=True)
    finally:
        bar.close()
        database.dispose()
    for p in report.problems[:show]:
        click.echo(f"  {p}", err=True)
    if report.problem_count > show:
        click.echo(f"  ... and {report.problem_count - show} more", err=True)
    if problems_out:
        with open(problems_out, "w", encoding="utf-8") as fh:
            json.dump([p.as_dict() for p in report.problems], fh, ensure_ascii=False, indent=1)
    if not report.written:
        raise click.ClickException(f"{report.problem_count} bad row(s); nothing was written "
                                   "(fix them, or use --allow-partial to load the rest)")
    rate = report.rows_written / report.seconds if report.seconds else 0
    msg = f"imported {report.rows_written:,} rows in {report.seconds:.1f} s ({rate:,.0f} rows/s)"
    if report.problem_count:
        msg += f"; skipped {report.problem_count} bad row(s) and what refers to them"
    click.echo(msg)


@click.command("export")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--local-network", "local_network", default=None, help="only this local network (its code, e.g. GZ)")
def export_cmd(path: str, local_network: str | None) -> None:
    """Export the database (or one local network) as a bundle into the directory PATH."""
    from pathlib import Path

    from resource_mgr.bulk.exporter import export_bundle
    from resource_mgr.errors import DomainError

    out = Path(path)
    if out.exists() and any(out.iterdir()):
        raise click.ClickException(f"{out} is not empty; export into a new or empty directory")
    database = _database()
    bar, progress = _bar("export")
    try:
        report = export_bundle(database, out, local_network=local_network, progress=progress)
    except DomainError as exc:
        raise click.ClickException(exc.detail) from None
    finally:
        bar.close()
        database.dispose()
    for warning in report.warnings:
        click.echo(f"warning: {warning}", err=True)
    click.echo(f"exported {sum(report.counts.values()):,} rows to {out} in {report.seconds:.1f} s")


COMMANDS.extend([import_cmd, export_cmd])
