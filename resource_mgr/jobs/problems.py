"""What a failed job tells its reader: a clean problem entry (`code`, `detail` in plain words,
`field` where known), never a server path, a stack trace or raw SQL. The raw error goes to the
log (with the job id), not into the job row."""
from __future__ import annotations

import re
from typing import Any

from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from resource_mgr.errors import DomainError

# An absolute path of two parts or more, not part of a URL (http://host/a/b) or a word.
_PATH = re.compile(r"(?<![\w.:/~-])(?:/[^\s/'\"():,;\[\]]+){2,}/?")
# SQLAlchemy's decorations of a driver error.
_SQL_TAIL = re.compile(r"\s*\[(?:SQL|parameters):.*", re.DOTALL)
_BACKGROUND = re.compile(r"\s*\(Background on this error at:[^)]*\)")
_DRIVER_PREFIX = re.compile(r"^\((?:sqlite3|psycopg2?|psycopg\.errors)\.[\w.]+\)\s*")


def clean_text(text: str, limit: int = 1000) -> str:
    """`text` without raw SQL, driver prefixes and server paths (a path becomes its last part)."""
    text = _BACKGROUND.sub("", _SQL_TAIL.sub("", text))
    text = _DRIVER_PREFIX.sub("", text.strip())
    text = _PATH.sub(lambda m: m.group(0).rstrip("/").rsplit("/", 1)[-1], text)
    return text[:limit]


def _unique(orig: Any, raw: str) -> tuple[str, str | None]:
    columns: list[str] = []
    value = None
    m = re.search(r"UNIQUE constraint failed: ([\w., ]+)", raw)  # SQLite: table.col, table.col
    if m:
        columns = [part.strip().split(".")[-1] for part in m.group(1).split(",")]
    m = re.search(r"Key \(([^)]*)\)=\((.*?)\) already exists", raw)  # PostgreSQL's DETAIL line
    if m:
        columns = [c.strip() for c in m.group(1).split(",")]
        value = m.group(2)
    table = getattr(getattr(orig, "diag", None), "table_name", None) or \
        (re.search(r"UNIQUE constraint failed: (\w+)\.", raw) or [None, None])[1]
    what = f"a {table}" if table else "a row"
    named = " and ".join(columns) or "these values"
    detail = f"{what} with this {named} already exists" + (f" ({value})" if value else "")
    return detail, (columns[0] if columns else None)


def database_problem(exc: DBAPIError) -> dict[str, Any]:
    """A database error in plain words: which rule the data broke, and which field if known."""
    orig = exc.orig
    raw = str(orig)
    if isinstance(exc, IntegrityError):
        lowered = raw.lower()
        if "unique" in lowered or "duplicate key" in lowered:
            detail, field = _unique(orig, raw)
            return _entry("conflict", detail, field)
        if "foreign key" in lowered:
            m = re.search(r"Key \((\w+)\)=\((.*?)\) is not present in table \"?(\w+)", raw)
            if m:
                return _entry("invalid", f"{m.group(1)} {m.group(2)} names a {m.group(3)} that does not exist",
                              m.group(1))
            return _entry("conflict", "a row refers to one that does not exist, or one still referred to "
                                      "was to be removed")
        m = re.search(r"NOT NULL constraint failed: \w+\.(\w+)|null value in column \"(\w+)\"", raw)
        if m:
            column = m.group(1) or m.group(2)
            return _entry("invalid", f"{column} is missing", column)
        m = re.search(r"CHECK constraint failed: (\w+)|violates check constraint \"(\w+)\"", raw)
        if m:
            return _entry("invalid", f"a value breaks the rule {m.group(1) or m.group(2)}")
        return _entry("conflict", "the data conflicts with data already stored")
    if isinstance(exc, OperationalError):
        return _entry("unavailable", "the database was not reachable or too busy")
    return _entry("internal", "the database refused an operation; the error is in the server log")


def _entry(code: str, detail: str, field: str | None = None, type_: str = "DatabaseError") -> dict[str, Any]:
    entry: dict[str, Any] = {"type": type_, "code": code, "detail": detail}
    if field:
        entry["field"] = field
    return entry


def problem_entry(exc: BaseException) -> dict[str, Any]:
    """The entry for `exc` in a job's `errors`."""
    if isinstance(exc, DomainError):
        entry: dict[str, Any] = {"type": type(exc).__name__, "detail": clean_text(str(exc.detail)), "code": exc.code}
        if exc.field:
            entry["field"] = exc.field
        return entry
    if isinstance(exc, DBAPIError):
        return database_problem(exc)
    if isinstance(exc, FileNotFoundError):
        name = clean_text(str(exc.filename or "")) or "a file"
        return _entry("not_found", f"{name} is not there (a runner on another host needs a shared directory)",
                      type_="FileNotFoundError")
    if isinstance(exc, OSError):
        return _entry("unavailable", f"a file could not be read or written ({exc.strerror or 'error'})",
                      type_=type(exc).__name__)
    if isinstance(exc, (KeyboardInterrupt, SystemExit)):
        return _entry("interrupted", "the runner was stopped while the job ran", type_=type(exc).__name__)
    return _entry("internal", f"an internal error occurred ({type(exc).__name__}); it is in the server log",
                  type_=type(exc).__name__)
