"""Import a bundle (see format.py, docs/data-format.md) into an empty or existing database.

Two phases:

1. **Validate** — every row of every file is read and checked (types, enums, ranges, geometry,
   duplicate keys, references, names unique in their scope, template specs, segments, capacity
   and double occupation); every bad row is reported with file, line, column and reason.
   Local networks and templates are reused by code / name; names, customers and numbers must
   not clash with what the database has.
2. **Write** — in ONE transaction, committed only if there are no problems (or with
   `allow_partial`: the good rows, skipping the bad ones and those that refer to them): Core bulk
   inserts of precomputed rows (ids made in process), PostgreSQL COPY for every table but the
   three small ones. Units are generated from their owners (templates, cables, segments) with
   their final occupancy, so no row is written twice; a unit's id is its place in its owner's
   block of ids, known before the unit is written.

On PostgreSQL without `allow_partial` the phases overlap: each file's rows are sent as soon as
they are checked, the units right after the occupancy check, and the files that change no unit
(connections, coverage, cable spans) are read last, while the server builds the unit indexes. A
problem stops the sending and the transaction is rolled back. SQLite writes after validating.

Memory: rows are held as tuples, unit references only for the units a file names (paths,
connections, overrides, holds); derived units are streamed to the database.

This module is the orchestration; the phases live in resource_mgr.bulk.importing (one module
each), around the shared `ImportState`.
"""
from __future__ import annotations

import contextlib
import gc
import time
from typing import Any

from sqlalchemy import select

from resource_mgr.bulk import format as fmt
from resource_mgr.bulk.format import FILE_BY_NAME, BundleReader
from resource_mgr.bulk.importing import ledger, numbers, resources, services, units
from resource_mgr.bulk.importing.numbers import FastGrader
from resource_mgr.bulk.importing.state import (
    IdMaker, ImportReport, ImportState, Owner, ProgressFn, Template,
)
from resource_mgr.bulk.importing.writer import Writer
from resource_mgr.db import Database
from resource_mgr.errors import Invalid
from resource_mgr.inventory import naming
from resource_mgr.inventory.templates import parse_spec
from resource_mgr.models import Customer, DeviceTemplate, LocalNetwork, NamingRule, Number, Resource

__all__ = ["FastGrader", "IdMaker", "ImportReport", "ImportState", "Importer", "JOB_KIND", "Owner", "Template",
           "import_bundle", "import_job"]


def import_bundle(database: Database, path: str, *, allow_partial: bool = False,
                  progress: ProgressFn | None = None, principal: str = "system:bulk-import") -> ImportReport:
    """Validate and import the bundle at `path`. Returns the report; `written` says whether
    anything was committed. The import is one operation-log row attributed to `principal`."""
    return Importer(database, path, allow_partial=allow_partial, progress=progress, principal=principal).run()


class Importer:
    """One import: `run()` reads, checks and writes the bundle and returns the report."""

    def __init__(self, database: Database, path: str, *, allow_partial: bool = False,
                 progress: ProgressFn | None = None, principal: str = "system:bulk-import") -> None:
        self.st = ImportState(database, str(path), principal=principal, partial=allow_partial, progress=progress)

    @property
    def principal(self) -> str:
        return self.st.principal

    @property
    def report(self) -> ImportReport:
        return self.st.report

    @property
    def mute_while_writing(self) -> bool:
        return self.st.mute_while_writing

    @mute_while_writing.setter
    def mute_while_writing(self, value: bool) -> None:
        self.st.mute_while_writing = value

    def run(self) -> ImportReport:
        # The import keeps millions of objects alive and makes no reference cycles: the cyclic
        # collector would only walk them again and again (a fifth of the run). It is off for
        # the whole process while the import runs.
        collecting = gc.isenabled()
        gc.disable()
        try:
            return self._run()
        finally:
            if collecting:
                gc.enable()

    def _run(self) -> ImportReport:
        st = self.st
        started = time.monotonic()
        try:
            reader = BundleReader(st.path)
        except (FileNotFoundError, OSError, ValueError) as exc:
            st.problem(str(st.path), 0, "", str(exc))
            st.report.seconds = time.monotonic() - started
            return st.report
        # On PostgreSQL (all or nothing), rows are sent as soon as their file is checked, so the
        # server loads them while the next files are read; the transaction commits only if every
        # row turns out good. SQLite would only hold its write lock longer.
        stream = not st.sqlite and not st.partial
        st.reader = reader
        with contextlib.ExitStack() as stack:
            with reader:
                st.total = sum(reader.count_rows(f.name) for f in fmt.FILES)
                _load_existing(st)
                _validate(st, reader, stack if stream else None)
                t1 = time.monotonic()
                st.report.phases["read"] = t1 - started
                ledger.occupy(st)
                if st.streaming():
                    # Nothing read later changes a unit: the units go now, and the server
                    # builds their indexes while the last files are read.
                    units.write_units(st)
                    services.send_paths(st)
                    st.out.rebuild_indexes(("unit", "number", "service_unit"))
                t2 = time.monotonic()
                st.report.phases["check"] = t2 - t1
                _validate_late(st, reader)
                for p in reader.problems:
                    st.problem(p.file, p.line, p.column, p.reason)
            t3 = time.monotonic()
            st.report.phases["read late"] = t3 - t2
            if st.report.problem_count and not st.partial:
                st.report.seconds = time.monotonic() - started
                st.tick(0, force=True)
                return st.report  # leaving the stack rolls back what was sent
            st.total = st.done + _rows_to_write(st)
            st.tick(0, force=True)
            st.writing = True
            if st.out is None:
                _begin(st, stack)
            _write(st)
            st.writing = False
            st.report.phases["write"] = time.monotonic() - t3
        st.report.written = True
        st.report.seconds = time.monotonic() - started
        st.total = st.done
        st.tick(0, force=True)
        return st.report


# -- what the database already has -----------------------------------------------------------------

def _load_existing(st: ImportState) -> None:
    with st.db.read_session() as s:
        for id_, code, area_code in s.execute(select(LocalNetwork.id, LocalNetwork.code, LocalNetwork.area_code)):
            st.ln[code] = (id_, area_code, True)
            st.rules[id_] = dict(naming.DEFAULT_RULES)
        for ln_id, kind, pattern in s.execute(select(NamingRule.local_network_id, NamingRule.kind, NamingRule.pattern)):
            st.rules.setdefault(ln_id, dict(naming.DEFAULT_RULES))[kind] = pattern
        for t in s.scalars(select(DeviceTemplate)):
            try:
                spec = parse_spec(t.spec)
            except Invalid:
                spec = None
            st.tpl[t.name] = Template(t.id, t.name, t.resource_kind, t.device_type, t.vendor, spec, True)
        st.existing_numbers = bool(s.scalar(select(Number.id).limit(1)))
        existing_ln = [v[0] for v in st.ln.values()]
        if existing_ln:
            for kind, scope, name in s.execute(select(Resource.kind, Resource.scope_id, Resource.name)
                                               .where(Resource.parent_id.is_(None))):
                st.scoped.add((kind, scope, name))
            for ln_id, ref in s.execute(select(Customer.local_network_id, Customer.external_ref)):
                st.customers[(ln_id, ref)] = ""  # existing: a clash, not a reference target


# -- phase 1: read and check every file ------------------------------------------------------------

def _validate(st: ImportState, reader: BundleReader, stack: contextlib.ExitStack | None) -> None:
    resources.local_networks(st, reader)
    resources.naming_rules(st, reader)
    resources.templates(st, reader)
    if stack is not None and not st.report.problem_count:
        _begin(st, stack)
    for name in fmt.RESOURCE_FILES:
        resources.resources(st, reader, name)
        st.stream("resource", FILE_BY_NAME[name].resource_kind)
    numbers.segment_overlaps(st)
    units.cards(st, reader)
    units.units(st, reader)
    numbers.numbers(st, reader)
    services.customers(st, reader)
    st.stream("customer")
    services.services(st, reader)
    st.stream("service")
    if st.streaming():
        st.out.rebuild_indexes(("resource", "address"))
    services.service_paths(st, reader)
    if st.streaming() and st.out.no_fk_checks:  # else after the units it refers to
        services.send_paths(st)
        st.out.rebuild_indexes(("service_unit",))
    services.preoccupations(st, reader)


def _validate_late(st: ImportState, reader: BundleReader) -> None:
    """The files that change no unit, read after the units are known (and on PostgreSQL
    already sent)."""
    units.connections(st, reader)
    units.check_connections(st)
    if st.streaming():
        units.send_connections(st)
        st.out.rebuild_indexes(("connection",))
    resources.coverage(st, reader)
    st.stream("coverage")
    resources.cable_spans(st, reader)
    st.stream("cable_span")


# -- phase 2: write --------------------------------------------------------------------------------

def _rows_to_write(st: ImportState) -> int:
    """The rows phase 2 writes (for the progress total), less what is sent already."""
    n_units = 0
    for owner in () if st.units_sent else st.owners.values():
        if owner.mode == "cable":
            n_units += owner.count
        elif owner.mode == "template":
            n_units += len(units.derived(st, owner)[1])
        elif owner.mode == "listed":
            n_units += len(st.listed.get(owner.key, ()))
    if not st.units_sent:
        n_units += sum(s[1] - s[0] + 1 for s in st.segments) * 2
    n_rows = sum(len(r) for t, r in st.rows.items()
                 if not (st.out is not None and t in ("local_network", "device_template")))
    n_paths = sum(len(p) // 3 for p in st.paths.values())
    sent = sum(st.out.sent.values()) if st.out is not None else 0
    return n_units + n_rows + n_paths + len(st.good_connections) + len(st.good_holds) - sent


def _begin(st: ImportState, stack: contextlib.ExitStack) -> None:
    st.out = Writer(st)
    st.out.begin(stack)


def _write(st: ImportState) -> None:
    out = st.out
    if out.no_fk_checks:
        # Without foreign-key checks the order is free: units first, so that the server
        # builds their indexes (the longest) while the other rows are made.
        units.write_units(st)
        out.rebuild_indexes(("unit", "number"))
    _write_big(st)
    out.close_pg()
    record_import(st, out.uow.session)
    out.uow.commit()


def _write_big(st: ImportState) -> None:
    """What is not written yet, parents first (through the writer thread on PostgreSQL)."""
    out = st.out
    out.send("resource")
    for name in fmt.RESOURCE_FILES:
        out.send(FILE_BY_NAME[name].resource_kind)
    out.send("cable_span")
    out.send("coverage")
    out.send("customer")
    if st.bad_services:
        bad_ids = {st.services[k][0] for k in st.bad_services}
        out.send("service", [r for r in st.rows["service"] if r[0] not in bad_ids])
    else:
        out.send("service")
    if not out.no_fk_checks:
        units.write_units(st)
    # the indexes of the tables complete by now are built while the paths and
    # connections are made
    out.rebuild_indexes(("unit", "number", "resource", "address", "coverage"))
    services.send_paths(st)
    units.send_connections(st)
    services.send_holds(st)
    out.rebuild_indexes()


def record_import(st: ImportState, session: Any) -> None:
    """The import's history: one operation-log row for the whole import (rows are not logged one
    by one), in the import's transaction."""
    from resource_mgr.security import audit

    networks = sorted({ln_id for ln_id, _, _ in st.ln.values()})
    audit.record(session, st.principal, resource_id=networks[0] if len(networks) == 1 else "bulk",
                 resource_kind="bulk_import", action="import",
                 local_network_id=networks[0] if len(networks) == 1 else None, before=None,
                 after={"bundle": st.display_name, "counts": dict(st.report.counts),
                        "local_networks": sorted(st.ln)})


# -- the job ---------------------------------------------------------------------------------------

JOB_KIND = "import"


def import_job(database: Database, job_id: str, progress: ProgressFn) -> dict[str, Any]:
    """The `import` job (resource_mgr.jobs): params {"path", "allow_partial"}. Progress goes to
    Job.done/total. On SQLite the write phase does not report progress (the import holds the
    only write lock until it commits); on PostgreSQL it does. A bundle with bad rows fails the
    job: `errors` says how many and the first ones, `result` holds the whole report."""
    from resource_mgr.jobs.models import Job

    with database.read_session() as s:
        job = s.get(Job, job_id)
        params = dict(job.params or {}) if job is not None else {}
    path = params.get("path")
    if not path:
        raise Invalid("the import job has no bundle path", field="path")
    importer = Importer(database, path, allow_partial=bool(params.get("allow_partial")), progress=progress,
                        principal=job.created_by if job is not None else "system:bulk-import")
    importer.mute_while_writing = database.dialect != "postgresql"
    report = importer.run()
    if not report.written:
        with database.unit_of_work(principal=importer.principal) as uow:
            found = uow.session.get(Job, job_id)
            if found is not None:
                found.result = report.as_dict()
            uow.commit()
        first = "; ".join(str(p) for p in report.problems[:5])
        raise Invalid(f"{report.problem_count} bad row(s); nothing was written: {first}", field="file")
    return report.as_dict()


def _register_job() -> None:
    from resource_mgr.jobs.services import register

    register(JOB_KIND, import_job)


_register_job()
