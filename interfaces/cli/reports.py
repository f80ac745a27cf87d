"""Reports from the command line, registered on the `rmgr` group by main.py.

    rmgr report spof [--local-network GZ] [--grade vip] [--format json|csv] [--output FILE]

`spof`: for each service of customers of that grade, the resources whose loss alone takes it down
(the topology engine's single points of failure, as GET /api/v1/reports/single-points-of-failure
answers), every service of the local network, read page by page with a progress bar on stderr.
JSON is the report's array; CSV has one row per service and resource (a service with none has one
row with empty resource columns). The database comes from the settings (RMGR_DATABASE_URL)."""
from __future__ import annotations

import csv
import io
import json
import sys
from typing import Any

import click
from sqlalchemy import select

from resource_mgr.config import load_settings
from resource_mgr.db import Database
from resource_mgr.errors import Invalid
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.states import CustomerGrade

COMMANDS: list[click.Command] = []
PAGE = 500
CSV_COLUMNS = ("service_id", "customer", "resource_id", "resource_kind", "resource_name")


def _customer(value: Any) -> str:
    if isinstance(value, dict):
        return str(value.get("name") or value.get("external_ref") or value.get("id") or "")
    return "" if value is None else str(value)


def spof_rows(session: Any, *, local_network_ids: frozenset[str] | None, grade: str,
              progress: Any = None) -> list[dict[str, Any]]:
    """The whole report, page by page."""
    from resource_mgr.topology.services import single_points_of_failure

    rows: list[dict[str, Any]] = []
    while True:
        page = single_points_of_failure(session, local_network_ids=local_network_ids, grade=grade, limit=PAGE,
                                        offset=len(rows))
        rows.extend(page)
        if progress is not None:
            progress.update(len(page))
        if len(page) < PAGE:
            return rows


def spof_csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        customer = _customer(row.get("customer"))
        for res in row.get("resources") or [{}]:
            writer.writerow((row["service_id"], customer, res.get("id", ""), res.get("kind", ""), res.get("name", "")))
    return out.getvalue()


@click.group("report")
def report() -> None:
    """Reports over the inventory."""


@report.command("spof")
@click.option("--local-network", "local_network", help="local network code (default: every one)")
@click.option("--grade", default=CustomerGrade.VIP.value, show_default=True,
              type=click.Choice([g.value for g in CustomerGrade]), help="the customers' grade")
@click.option("--format", "fmt", default="json", show_default=True, type=click.Choice(["json", "csv"]))
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-", help="file (default stdout)")
@click.option("--progress/--no-progress", default=True, show_default=True, help="a progress bar on stderr")
def spof_cmd(local_network: str | None, grade: str, fmt: str, output: Any, progress: bool) -> None:
    """Single points of failure: for each service of customers of GRADE, the resources whose loss
    alone takes it down."""
    from tqdm import tqdm

    database = Database(load_settings().database_url)
    try:
        with database.read_session() as session:
            scope = None
            if local_network:
                ln = session.scalar(select(LocalNetwork.id).where(LocalNetwork.code == local_network))
                if ln is None:
                    raise Invalid(f"unknown local network {local_network!r}", field="local_network")
                scope = frozenset({ln})
            with tqdm(unit=" services", desc="single points of failure", file=sys.stderr,
                      disable=not progress, leave=False) as bar:
                rows = spof_rows(session, local_network_ids=scope, grade=grade, progress=bar)
    finally:
        database.dispose()
    if fmt == "csv":
        output.write(spof_csv(rows))
    else:
        output.write(json.dumps(rows, ensure_ascii=False, indent=1) + "\n")


COMMANDS.append(report)
