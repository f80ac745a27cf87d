"""The change feed under concurrent writers: a follower never skips or reorders a change.

Eight writer OS processes (each its own engine) commit and roll back many small transactions
of varying length while a follower polls `changes_since` from the last position it read. At the
end every committed row was seen exactly once, in increasing position, and the full feed holds
nothing the follower did not see (a change committed below a position already read would be
missing from what it saw). On PostgreSQL this fails when positions are given at insert time
(History.id order is not commit order); see docs/change-feed.md."""
from __future__ import annotations

import os
import random
import subprocess
import sys
import threading
from pathlib import Path

from sqlalchemy import select

from resource_mgr.changes.services import changes_since
from resource_mgr.occupancy.models import History

ROOT = Path(__file__).resolve().parents[2]
WRITERS = 8


def _follow(db, stop: threading.Event, seen: list[tuple[int, str]], errors: list[str]) -> None:
    rng, last = random.Random(7), 0
    try:
        while True:
            done = stop.is_set()  # read before polling: the last poll starts after every commit
            with db.read_session() as s:
                page = changes_since(s, last, rng.randint(1, 40))
                for h in page.changes:
                    if h.position <= last:
                        errors.append(f"position {h.position} after {last}")
                    seen.append((h.position, h.after["tag"]))
                    last = h.position
            if page.last_position != last:
                errors.append(f"last_position {page.last_position}, last row {last}")
            if done and not page.more:
                return
    except Exception as exc:  # noqa: BLE001 -- reported by the test
        errors.append(repr(exc))


def run_race(db, tmp_path: Path, transactions: int) -> None:
    out = [tmp_path / f"writer{w}.txt" for w in range(WRITERS)]
    stop, seen, errors = threading.Event(), [], []
    follower = threading.Thread(target=_follow, args=(db, stop, seen, errors))
    follower.start()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-m", "tests.feed_race", db.url, str(w), str(transactions),
                               str(1000 + w), str(out[w])], cwd=ROOT, env=env) for w in range(WRITERS)]
    try:
        codes = [p.wait(timeout=600) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        stop.set()
        follower.join(timeout=120)
    assert codes == [0] * WRITERS
    assert not errors, errors[:5]

    committed = [tag for path in out for tag in path.read_text().split()]
    with db.read_session() as s:
        feed = s.execute(select(History.position, History.after).where(History.action == "race")
                         .order_by(History.position)).all()
        unstamped = s.scalars(select(History.id).where(History.position.is_(None))).all()
    assert not unstamped, f"{len(unstamped)} committed rows without a position"
    assert len(committed) > WRITERS * transactions  # several rows per transaction, some rolled back
    assert sorted(t for _, t in seen) == sorted(committed), "the follower saw other rows than were committed"
    missed = {a["tag"] for _, a in feed} - {t for _, t in seen}
    assert not missed, f"{len(missed)} committed changes appeared below a position already read"
    positions = [p for p, _ in seen]
    assert positions == sorted(set(positions))  # increasing, each once


def test_eight_writer_processes_and_a_follower(db, tmp_path):
    run_race(db, tmp_path, transactions=60 if db.dialect == "postgresql" else 25)
