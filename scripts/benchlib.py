"""What the benchmarks share: a generated city loaded once into the database under test, a free
local port for the server under test, and a quantile."""
from __future__ import annotations

import socket
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def quantile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def load_city(url: str, size: str, label: str) -> Any:
    """The Database at `url`, migrated, with a generated city of `size` (seed 1) imported unless
    it holds one already (a benchmark database is loaded once and reused)."""
    from sqlalchemy import func, select

    from resource_mgr import migrate, models  # noqa: F401
    from resource_mgr.bulk.generator import generate
    from resource_mgr.bulk.importer import import_bundle
    from resource_mgr.db import Database
    from resource_mgr.inventory.models import LocalNetwork

    migrate.upgrade(url)
    db = Database(url)
    with db.read_session() as s:
        empty = not s.scalar(select(func.count()).select_from(LocalNetwork))
    if empty:
        out = Path(tempfile.mkdtemp(prefix=f"rmgr-bench-{label}-")) / "city"
        began = time.perf_counter()
        generate(size, 1, out, as_of=datetime.now(timezone.utc).replace(microsecond=0))
        import_bundle(db, str(out))
        print(f"loaded size {size} in {time.perf_counter() - began:.0f} s", flush=True)
    return db
