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
import re
import sqlite3
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from resource_mgr.bulk import format as fmt
from resource_mgr.bulk import uploads
from resource_mgr.bulk.format import FILE_BY_NAME, BundleReader, BundleRefused
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
from resource_mgr.models import Customer, Device, DeviceTemplate, LocalNetwork, NamingRule, Number, Resource

__all__ = ["FastGrader", "IdMaker", "ImportLimits", "ImportReport", "ImportState", "Importer", "JOB_KIND", "Owner",
           "Template", "import_bundle", "import_job"]


@dataclass(frozen=True)
class ImportLimits:
    """Past these a bundle is refused (None: no limit); see the import_max_* settings."""

    max_bytes: int | None = None  # bytes an archive expands to
    max_rows: int | None = None  # data rows in all files
    max_ratio: float | None = None  # times its own size an archive may expand

    @classmethod
    def from_settings(cls, settings: Any) -> "ImportLimits":
        return cls(settings.import_max_expanded_bytes, settings.import_max_rows, settings.import_max_compression_ratio)


def import_bundle(database: Database, path: str, *, allow_partial: bool = False,
                  progress: ProgressFn | None = None, principal: str = "system:bulk-import",
                  limits: ImportLimits | None = None, own_process: bool = False) -> ImportReport:
    """Validate and import the bundle at `path`. Returns the report; `written` says whether
    anything was committed. The import is one operation-log row attributed to `principal`.
    `own_process`: the caller runs nothing else in this process (the CLI), so the cyclic
    garbage collector may be off while the import runs (see Importer.run)."""
    return Importer(database, path, allow_partial=allow_partial, progress=progress, principal=principal,
                    limits=limits).run(own_process=own_process)


class Importer:
    """One import: `run()` reads, checks and writes the bundle and returns the report."""

    def __init__(self, database: Database, path: str | Path, *, allow_partial: bool = False,
                 progress: ProgressFn | None = None, principal: str = "system:bulk-import",
                 limits: ImportLimits | None = None, display_name: str = "", job_id: str | None = None) -> None:
        self.limits = limits or ImportLimits()
        self.st = ImportState(database, str(path), principal=principal, partial=allow_partial, progress=progress,
                              display_name=display_name, job_id=job_id)

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

    def run(self, *, own_process: bool = False) -> ImportReport:
        """Read, check and write. Never raises for the bundle's or the database's sake: every
        problem is in the report (a database refusal too, as a problem naming the file).

        The import keeps millions of objects alive and makes no reference cycles, so the cyclic
        collector would only walk them again and again. The collector is process-wide: it is
        turned off only when the caller says the process is the import's alone (`own_process`,
        the CLI); elsewhere (jobs in the API process or a worker) the objects loaded so far are
        frozen (gc.freeze) at the end of each phase, out of the collector's way, and thawed at
        the end."""
        collecting = gc.isenabled()
        if own_process:
            gc.disable()
        else:
            self.st.freeze = _freeze
        try:
            return self._guarded()
        finally:
            if own_process and collecting:
                gc.enable()
            elif not own_process:
                gc.unfreeze()

    def _guarded(self) -> ImportReport:
        st = self.st
        started = time.monotonic()
        try:
            return self._run(started)
        except BundleRefused as exc:
            for p in exc.problems:
                st.problem(p.file, p.line, p.column, p.reason)
        except (DBAPIError, sqlite3.Error, psycopg.Error) as exc:
            file, column, reason = database_problem(exc)
            st.problem(file, 0, column, reason)
        except (zipfile.BadZipFile, tarfile.TarError, zlib.error, EOFError, UnicodeDecodeError) as exc:
            st.problem(st.display_name, 0, "", f"the bundle cannot be read ({type(exc).__name__}: {exc})")
        st.report.written = False
        st.report.seconds = time.monotonic() - started
        st.tick(0, force=True)
        return st.report

    def _run(self, started: float) -> ImportReport:
        st = self.st
        try:
            reader = BundleReader(st.path, max_bytes=self.limits.max_bytes, max_rows=self.limits.max_rows,
                                  max_ratio=self.limits.max_ratio)
        except (FileNotFoundError, OSError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            st.problem(st.display_name, 0, "", f"not a bundle ({reason})" if "not a bundle" not in reason else reason)
            st.report.seconds = time.monotonic() - started
            return st.report
        except BundleRefused:
            raise
        except (ValueError, EOFError, tarfile.TarError, zipfile.BadZipFile) as exc:  # a broken archive
            st.problem(st.display_name, 0, "", f"not a readable .zip or .tar: {exc}")
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
                reader.check_declared_rows(st.total)
                _load_existing(st)
                _validate(st, reader, stack if stream else None)
                t1 = time.monotonic()
                st.report.phases["read"] = t1 - started
                st.freeze()
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
            for (ip,) in s.execute(select(Device.management_ip).where(Device.management_ip != "")):
                st.management_ips[ip] = ""  # alarms find a device by it: one device per address


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
    services.send_reservations(st)  # the orders of the pre-occupations (resource_mgr.orders)
    out.rebuild_indexes()


def _freeze() -> None:
    gc.collect(0)
    gc.freeze()


# what a database table is made from, to name the file a refusal is about
_TABLE_FILES = {"local_network": "local_networks.csv", "naming_rule": "naming_rules.csv",
                "device_template": "templates.csv", "unit": "units.csv", "number": "number_segments.csv",
                "customer": "customers.csv", "service": "services.csv", "service_unit": "service_paths.csv",
                "connection": "connections.csv", "coverage": "coverage.csv", "cable_span": "cable_spans.csv",
                "shared_hold": "preoccupations.csv", "card": "cards.csv",
                **{spec.resource_kind: spec.filename for spec in fmt.FILES if spec.resource_kind}}
_SQLITE_CONSTRAINT = re.compile(r"constraint failed: ([\w.]+)")


def database_problem(exc: BaseException) -> tuple[str, str, str]:
    """(file, column, reason) for a database's refusal, without its SQL: the rows were checked,
    so what the database refuses is mostly what someone else wrote meanwhile."""
    orig = getattr(exc, "orig", None) or exc
    table = column = constraint = ""
    diag = getattr(orig, "diag", None)
    if diag is not None:  # PostgreSQL
        table, column, constraint = diag.table_name or "", diag.column_name or "", diag.constraint_name or ""
        kind = (getattr(orig, "sqlstate", "") or "")[:2]
    else:
        m = _SQLITE_CONSTRAINT.search(str(orig))
        if m:
            table, _, column = m.group(1).partition(".")
        kind = "23" if isinstance(orig, sqlite3.IntegrityError) else ""
    what = f" ({constraint or (table + '.' + column if column else table)})" if (table or constraint) else ""
    if kind == "23":
        reason = (f"the database refused these rows{what}: they clash with rows written since the import began "
                  "(or break a rule of the database); nothing was written: check and import again")
    else:
        reason = f"the database could not take the import ({type(orig).__name__}){what}; nothing was written"
    return _TABLE_FILES.get(table, ""), column, reason


def record_import(st: ImportState, session: Any) -> None:
    """The import's history: one operation-log row for the whole import (rows are not logged one
    by one), in the import's transaction. It is the import's change-feed entry too (stamped at
    commit like any history row): a follower reloads the local networks it names."""
    from resource_mgr.security import audit

    networks = sorted({ln_id for ln_id, _, _ in st.ln.values()})
    audit.record(session, st.principal, resource_id=networks[0] if len(networks) == 1 else "bulk",
                 resource_kind="bulk_import", action="import",
                 local_network_id=networks[0] if len(networks) == 1 else None, before=None,
                 after={"bundle": st.display_name, "counts": dict(st.report.counts),
                        "local_networks": sorted(st.ln), "local_network_ids": networks})
    if st.job_id is not None:
        # The job learns that its import committed in the same transaction, so a runner that dies
        # between this commit and the job's end does not make the next runner import it again.
        from sqlalchemy import update

        from resource_mgr.jobs.models import Job

        session.execute(update(Job).where(Job.id == st.job_id).values(
            result={COMMITTED: True, "counts": dict(st.report.counts)}))


# -- the job ---------------------------------------------------------------------------------------

JOB_KIND = "import"
COMMITTED = "import_committed"  # in Job.result: the import of this job is in the database


def import_job(database: Database, job_id: str, progress: ProgressFn) -> dict[str, Any]:
    """The `import` job (resource_mgr.jobs): params {"upload" (a name from bulk.uploads),
    "filename" (the client's, shown in problems), "allow_partial"}; {"path"} instead names a
    bundle on this host (left where it is). Progress goes to Job.done/total. On SQLite the write
    phase does not report progress (the import holds the only write lock until it commits); on
    PostgreSQL it does. A bundle with bad rows fails the job: `errors` says how many and the
    first ones, `result` holds the whole report. The upload is removed when the job ends, done
    or failed (a worker killed mid-job leaves it for the job's next run).

    Idempotent: the import is one transaction, so a run cut short wrote nothing and the job can
    simply run again; the transaction also marks the job (`COMMITTED` in its result), so a run
    after a committed import only reports it."""
    from resource_mgr.config import load_settings
    from resource_mgr.jobs.models import Job

    with database.read_session() as s:
        job = s.get(Job, job_id)
        params = dict(job.params or {}) if job is not None else {}
        earlier = dict(job.result or {}) if job is not None else {}
    settings = load_settings()
    upload: Path | None = None
    if params.get("upload"):
        path = upload = uploads.upload_path(settings, params["upload"])
    elif params.get("path"):
        path = Path(params["path"])
    else:
        raise Invalid("the import job names no bundle", field="upload")
    if earlier.get(COMMITTED):  # an earlier runner committed the import and died before the job's end
        if upload is not None:
            upload.unlink(missing_ok=True)
        return {**earlier, "message": "the import had been committed by an earlier run of this job; "
                                      "nothing was imported again"}
    try:
        importer = Importer(database, path, allow_partial=bool(params.get("allow_partial")), progress=progress,
                            principal=job.created_by if job is not None else "system:bulk-import",
                            limits=ImportLimits.from_settings(settings),
                            display_name=str(params.get("filename") or path.name), job_id=job_id)
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
    finally:
        if upload is not None:
            upload.unlink(missing_ok=True)


def _register_job() -> None:
    from resource_mgr.jobs.services import register

    register(JOB_KIND, import_job, rerun="idempotent")  # one transaction: a runner that died rolled it back


_register_job()
