"""What tests running side by side (pytest-xdist, `-n 2` in pyproject's addopts) must not share.

Each xdist worker (PYTEST_XDIST_WORKER=gw0, gw1, ...) has its own database (tests/conftest.py) and
its own Redis database numbers: the Celery tests use RMGR_TEST_CELERY_BROKER_URL's number N
(default 7) and the rate-limit tests N + 1, each plus 2k on worker k (gw0 7 and 8, gw1 9 and 10).
The two backends' runs side by side need base numbers 4 apart (.ci/run gives 7 and 11)."""
from __future__ import annotations

import os

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
