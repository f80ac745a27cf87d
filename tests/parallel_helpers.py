"""What tests running side by side (pytest-xdist, `-n 2` in pyproject's addopts) must not share.

Each xdist worker (PYTEST_XDIST_WORKER=gw0, gw1, ...) has its own database (tests/conftest.py) and
its own Redis database numbers: the Celery tests use RMGR_TEST_CELERY_BROKER_URL's number N
(default 7) and the rate-limit tests N + 1, each plus 2k on worker k (gw0 7 and 8, gw1 9 and 10).
The two backends' runs side by side need base numbers 4 apart (.ci/run gives 7 and 11)."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

REDIS_DATABASES = 16  # Redis's default `databases`


def worker_index() -> int:
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    return int(worker[2:]) if worker.startswith("gw") else 0


def worker_redis_url(url: str) -> str:
    """`url` (redis://host:port/N) moved to this worker's database number."""
    parsed = make_url(url)
    number = int(parsed.database or 0) + 2 * worker_index()
    if number >= REDIS_DATABASES:
        raise RuntimeError(f"Redis has no database {number} for xdist worker {worker_index()}: "
                           f"run fewer workers (-n) or lower the base number of {url}")
    return parsed.set(database=str(number)).render_as_string(hide_password=False)


def celery_broker_url() -> str:
    return worker_redis_url(os.environ.get("RMGR_TEST_CELERY_BROKER_URL", "redis://127.0.0.1:6379/7"))


def ratelimit_redis_url() -> str:
    """The Redis database after the Celery tests' one."""
    url = make_url(celery_broker_url())
    return url.set(database=str(int(url.database or 0) + 1)).render_as_string(hide_password=False)


# -- the order modules go to the workers ---------------------------------------------------------
# `--dist loadscope` hands whole modules to the workers in the order they were collected (xdist's
# own reorder, by number of tests, is off in addopts: it sent the slow modules of few tests, the
# schemathesis runs, the generated cities, the Celery and process tests, last, and one worker ran
# them alone for the last part of the run). The workers collect the costliest modules first
# (seconds of setup, call and teardown in one measured run: tests/module_costs.json), so the short
# ones fill the end and both workers finish together. A module not in the file counts the file's
# median seconds per test for each of its tests. Refresh the file after a run on PostgreSQL:
# `RMGR_TEST_RECORD_COSTS=tests/module_costs.json python -m pytest`.

COSTS_FILE = Path(__file__).with_name("module_costs.json")


def module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


@dataclass
class Costs:
    seconds: dict[str, float]  # module → seconds in the measured run
    per_test: float  # for a module not measured: this much a test

    def of(self, module: str, tests: int) -> float:
        return self.seconds.get(module, self.per_test * tests)


def load_costs(path: Path = COSTS_FILE) -> Costs:
    try:
        modules = json.loads(path.read_text())["modules"]
        seconds = {m: float(v["seconds"]) for m, v in modules.items()}
        rates = sorted(float(v["seconds"]) / max(1, int(v["tests"])) for v in modules.values())
    except (OSError, ValueError, KeyError, TypeError):
        return Costs({}, 1.0)
    return Costs(seconds, rates[len(rates) // 2] if rates else 1.0)


def slowest_modules_first(items: list, costs: Costs) -> None:
    """Reorder pytest items in place: whole modules, the costliest first; within a module the
    order is kept (its module-scoped worlds are built once)."""
    groups: dict[str, list] = {}
    for item in items:
        groups.setdefault(module_of(item.nodeid), []).append(item)
    order = sorted(groups, key=lambda m: -costs.of(m, len(groups[m])))
    items[:] = [item for module in order for item in groups[module]]


class CostRecorder:
    """Adds up each module's setup, call and teardown seconds as the reports come in (on the
    controller under xdist) and writes them the way load_costs reads them."""

    def __init__(self, path: str) -> None:
        self.path = Path(path)
        self.seconds: dict[str, float] = {}
        self.tests: dict[str, set[str]] = {}

    def pytest_runtest_logreport(self, report) -> None:
        module = module_of(report.nodeid)
        self.seconds[module] = self.seconds.get(module, 0.0) + report.duration
        self.tests.setdefault(module, set()).add(report.nodeid)

    def pytest_sessionfinish(self, session) -> None:
        if not self.seconds:
            return
        modules = {m: {"seconds": round(s, 1), "tests": len(self.tests[m])}
                   for m, s in sorted(self.seconds.items(), key=lambda kv: -kv[1])}
        about = ("seconds of setup, call and teardown per test module in one run, for the order in which "
                 "the xdist workers get the modules (tests/parallel_helpers.py: slowest_modules_first)")
        self.path.write_text(json.dumps({"about": about, "modules": modules}, indent=1, ensure_ascii=False) + "\n")
