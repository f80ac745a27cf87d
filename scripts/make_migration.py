#!/usr/bin/env python
"""Draft a new Alembic revision from the models: `scripts/make_migration.py "add security tables"`.

Creates a scratch PostgreSQL+PostGIS database, upgrades it to the current head, autogenerates the
difference to the models into migrations/versions/, drops the scratch database and prints the new
file. Review it by hand: the same revision must run on SQLite and PostgreSQL.

The server comes from RMGR_ADMIN_DATABASE_URL (default postgresql://postgres@127.0.0.1/postgres);
that user must be allowed to create databases.
"""
from __future__ import annotations

import argparse
import os
import secrets
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # run from a checkout without installing

from alembic import command  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from resource_mgr import migrate  # noqa: E402
from resource_mgr.models import Base  # noqa: E402

DEFAULT_ADMIN_URL = "postgresql://postgres@127.0.0.1/postgres"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("message", help="what the revision does, e.g. 'add security tables'")
    args = parser.parse_args(argv)

    admin_url = migrate.normalise_url(os.environ.get("RMGR_ADMIN_DATABASE_URL", DEFAULT_ADMIN_URL))
    scratch = f"rmgr_mig_scratch_{secrets.token_hex(4)}"
    scratch_url = make_url(admin_url).set(database=scratch).render_as_string(hide_password=False)
    admin = create_engine(admin_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{scratch}"'))
    try:
        engine = create_engine(scratch_url, poolclass=NullPool)
        with engine.begin() as conn:
            conn.execute(text("CREATE EXTENSION IF NOT EXISTS postgis"))
        engine.dispose()
        migrate.upgrade(scratch_url)
        if not migrate.drift(scratch_url):
            print("The models and the migrations agree: nothing to generate.")
            return 0
        engine = create_engine(scratch_url, poolclass=NullPool)
        with engine.begin() as conn:
            cfg = migrate.alembic_config(scratch_url)
            cfg.attributes["connection"] = conn
            script = command.revision(cfg, message=args.message, autogenerate=True)
        engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{scratch}" WITH (FORCE)'))
        admin.dispose()

    scripts = script if isinstance(script, list) else [script]
    for item in scripts:
        if item is None:
            continue
        path = Path(item.path)
        body = path.read_text()
        print(f"==> {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}\n")
        print(body)
        pg_only = [ix.name for t in Base.metadata.tables.values() for ix in t.indexes
                   if ix.name and f"'{ix.name}'" in body and not migrate.applies_to(ix, "sqlite")]
        if pg_only:
            print("REVIEW: PostgreSQL-only indexes to wrap in `if _is_postgresql():` "
                  "(create and drop): " + ", ".join(pg_only))
    print("REVIEW: then run the suite on both backends (tests/integration/test_migrations.py).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
