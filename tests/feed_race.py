"""A writer process for the change-feed race tests (tests/integration/test_change_feed_race.py).

`python -m tests.feed_race URL WRITER TRANSACTIONS SEED OUT` runs TRANSACTIONS small transactions,
each adding 1–4 history rows with pauses between them (so that a transaction that took its row
ids early often commits after one that took later ids), and rolls back about one in five. The tag
of every row that was committed is appended to OUT once its commit has returned."""
from __future__ import annotations

import random
import sys
import time

from resource_mgr.db import Database
from resource_mgr.security import audit


def run(url: str, writer: int, transactions: int, seed: int, out_path: str) -> None:
    rng = random.Random(seed)
    db = Database(url)
    with open(out_path, "a", encoding="utf-8") as out:
        for t in range(transactions):
            tags = [f"w{writer}-t{t}-r{i}" for i in range(rng.randint(1, 4))]
            with db.unit_of_work(principal=f"test:writer{writer}") as uow:
                for tag in tags:
                    audit.record(uow.session, None, resource_id=tag, resource_kind="test", action="race",
                                 local_network_id=None, before=None, after={"tag": tag})
                    time.sleep(rng.random() * 0.004)
                if rng.random() < 0.2:
                    uow.rollback()
                    continue
                uow.commit()
            out.write("\n".join(tags) + "\n")
            out.flush()
    db.dispose()


if __name__ == "__main__":
    run(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), sys.argv[5])
