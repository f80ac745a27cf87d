"""`rmgr cutover plan --scope ID --out plan.csv|plan.xlsx`: the copper-to-fibre planner's
proposed mapping written as a file (the mapping's columns, then notes for the clerk), with a
progress bar; the counts and the unmapped services' reasons are printed. Registered on the
`rmgr` group by main.py (under the `cutover` group, made here unless another module made it)."""
from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import click

COMMANDS: list[click.Command] = []


@click.command("plan")
@click.option("--scope", "scope_id", required=True, help="a cross box, a copper distribution box or an area id")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False, writable=True),
              help="the mapping file to write: .csv or .xlsx")
@click.option("--unmapped", "unmapped_out", type=click.Path(dir_okay=False, writable=True), default=None,
              help="also write the services that cannot be mapped, with their reasons (CSV)")
@click.option("--share-lines/--separate-lines", "share", default=None,
              help="the copper services of an address on one FTTH line (one box port), or a line each; "
                   "default: as cutover validation accepts")
def plan_cmd(scope_id: str, out: str, unmapped_out: str | None, share: bool | None) -> None:
    """Propose a copper-to-fibre cutover mapping (光進銅退) for a cross box, a copper
    distribution box or an area: every copper service to an FTTH box port at its address,
    number kept. The file can be given as it is to POST /api/v1/cutovers."""
    from tqdm import tqdm

    from interfaces.cli.bulk import _database, _settings
    from resource_mgr.clock import utcnow
    from resource_mgr.cutovers.files import mapping_csv, mapping_xlsx
    from resource_mgr.cutovers.planner import download_rows, plan_copper_to_fibre

    path = Path(out)
    if path.suffix.lower() not in (".csv", ".xlsx"):
        raise click.BadParameter("the file name must end in .csv or .xlsx", param_hint="--out")
    settings = _settings()
    database = _database()
    try:
        with database.read_session() as session, \
                tqdm(total=0, unit="address", desc="plan", file=sys.stderr, dynamic_ncols=True) as bar:
            def progress(done: int, total: int) -> None:
                if bar.total != total:
                    bar.total = total
                    bar.refresh()
                bar.update(done - bar.n)
            plan = plan_copper_to_fibre(session, scope_id=scope_id, settings=settings, now=utcnow(),
                                        local_network_ids=None, progress=progress,
                                        one_line_per_address=share)
    finally:
        database.dispose()
    rows = download_rows(plan)
    path.write_bytes(mapping_xlsx(rows) if path.suffix.lower() == ".xlsx" else mapping_csv(rows))
    if unmapped_out:
        Path(unmapped_out).write_bytes(_unmapped_csv(plan["unmapped"]))
    click.echo(json.dumps({"scope": plan["scope"], "out": str(path), **plan["counts"]}, ensure_ascii=False))
    for code, n in Counter(u["reason_code"] for u in plan["unmapped"]).most_common():
        example = next(u for u in plan["unmapped"] if u["reason_code"] == code)
        click.echo(f"unmapped {code}: {n} (e.g. service {example['service_id']}: {example['reason']})", err=True)


def _unmapped_csv(unmapped: list[dict]) -> bytes:
    import csv
    import io

    cols = ["service_id", "product", "number", "address_id", "reason_code", "reason", "reason_zh"]
    buf = io.StringIO(newline="")
    w = csv.DictWriter(buf, fieldnames=cols, extrasaction="ignore")
    w.writeheader()
    w.writerows(unmapped)
    return b"\xef\xbb\xbf" + buf.getvalue().encode("utf-8")


def _cutover_group() -> click.Group | None:
    """The `cutover` group if another module registered one already (then `plan` joins it)."""
    main = sys.modules.get("interfaces.cli.main")
    existing = getattr(main, "cli", None) and main.cli.commands.get("cutover")
    return existing if isinstance(existing, click.Group) else None


_group = _cutover_group()
if _group is not None:
    _group.add_command(plan_cmd)
else:
    @click.group("cutover")
    def cutover_group() -> None:
        """Cutovers (割接): the copper-to-fibre planner."""

    cutover_group.add_command(plan_cmd)
    COMMANDS.append(cutover_group)
