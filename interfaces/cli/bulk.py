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
