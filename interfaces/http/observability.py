"""Request ids, structured logs and Prometheus metrics.

- Request id: taken from the X-Request-ID header when it is a sane token (1–128 of A–Z a–z 0–9 . _ -),
  made otherwise; answered in X-Request-ID, written in every log line of the request and in every
  problem+json body (`request_id`).
- Logs: one access line per request (method, path, endpoint, status, duration, principal, request id);
  JSON lines when settings.log_json, plain text otherwise; level from settings.log_level.
- GET /metrics (Prometheus text format). Not public: it needs a token with role admin, auditor or
  maintenance (occupancy counts are operator data) for every local network; give the scraper one, e.g.
  `rmgr token create --system nms --role maintenance --local-network '*'`. A token limited to some
  local networks is refused (403 `forbidden`, field local_networks): the series count the whole
  province and the latency of every request, and one series name must mean one thing to
  Prometheus, so they are not cut per caller. Series:
    rmgr_http_request_duration_seconds{endpoint,method,status}  histogram
    rmgr_units{kind,occupancy}                                   gauge, effective occupancy (an
                                                                 expired pre-occupation counts as free)
    rmgr_reservations{state}                                     gauge, once an orders module exists
    rmgr_jobs{state}                                             gauge, queued and running jobs
    rmgr_graph_loaded                                            1 once the topology graph was built
    rmgr_graph_staleness_seconds                                 seconds since the last rebuild; only
                                                                 exported after `mark_graph_rebuilt`
  Database-backed series are read at scrape time, so every API process reports the same numbers.
  There is no topology module yet: until one calls `mark_graph_rebuilt()` (process-local, as the
  networkx graph is), rmgr_graph_loaded is 0 and no staleness is exported.
"""
from __future__ import annotations

import json
import logging
import re
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from apiflask import APIBlueprint, APIFlask
from flask import Response, current_app, g, has_request_context, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from resource_mgr.clock import aware, utcnow
from resource_mgr.errors import Forbidden
from resource_mgr.ids import new_id
from resource_mgr.states import JobState, Role

from interfaces.http.auth import require

_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
access_log = logging.getLogger("rmgr.access")


# -- graph freshness: a process-wide value the topology code sets ----------------------------

class _GraphFreshness:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._built_at: float | None = None

    def mark_rebuilt(self, at: datetime | float | None = None) -> None:
        if isinstance(at, datetime):
            at = aware(at).timestamp()
        with self._lock:
            self._built_at = time.time() if at is None else float(at)

    def reset(self) -> None:
        with self._lock:
            self._built_at = None

    def staleness(self) -> float | None:
        with self._lock:
            return None if self._built_at is None else max(0.0, time.time() - self._built_at)


GRAPH = _GraphFreshness()


def mark_graph_rebuilt(at: datetime | float | None = None) -> None:
    """Call after the topology graph is (re)built; /metrics then reports its age."""
    GRAPH.mark_rebuilt(at)


# -- logging ----------------------------------------------------------------------------------

class RequestContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if has_request_context():
            record.request_id = g.get("request_id", "-")
            principal = g.get("principal")
            record.principal = principal.name if principal is not None else "-"
        else:
            record.request_id = getattr(record, "request_id", "-")
            record.principal = getattr(record, "principal", "-")
        return True


class JsonFormatter(logging.Formatter):
    _STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created).astimezone().isoformat(timespec="milliseconds"),
            "level": record.levelname, "logger": record.name, "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in self._STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool, type(None))) else str(value)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str, as_json: bool, stream: Any = None) -> logging.Handler:
    """Send the `rmgr` loggers to one handler (stderr by default). Idempotent per process."""
    logger = logging.getLogger("rmgr")
    for handler in list(logger.handlers):
        if getattr(handler, "_rmgr", False):
            logger.removeHandler(handler)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler._rmgr = True  # type: ignore[attr-defined]
    handler.addFilter(RequestContextFilter())
    handler.setFormatter(JsonFormatter() if as_json else logging.Formatter(
        "%(asctime)s %(levelname)s %(name)s [%(request_id)s %(principal)s] %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


# -- metrics ----------------------------------------------------------------------------------

class DatabaseCollector(Collector):
    """Occupancy, reservations and jobs, read from the database at scrape time."""

    def __init__(self, app: APIFlask) -> None:
        self.app = app

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily("rmgr_units", "Allocatable units by kind and effective occupancy",
                                  labels=["kind", "occupancy"]),
                GaugeMetricFamily("rmgr_jobs", "Background jobs waiting or running (queue depth)", labels=["state"]),
                GaugeMetricFamily("rmgr_reservations", "Reservations by state", labels=["state"]))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        """The metric names, without reading the database (registering must not connect)."""
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        from resource_mgr.jobs.models import Job
        from resource_mgr.occupancy.models import Unit

        db = self.app.extensions["rmgr"].db
        now = utcnow()
        units, jobs, reservations = self._families()
        try:
            with db.read_session() as session:
                effective = Unit.effective_occupancy(now)  # shared units counted by services and holds
                for kind, state, n in session.execute(
                        select(Unit.kind, effective, func.count()).group_by(Unit.kind, effective)):
                    units.add_metric([kind, str(state)], n)
                counts = dict(session.execute(select(Job.state, func.count()).where(
                    Job.state.in_([JobState.QUEUED, JobState.RUNNING])).group_by(Job.state)).all())
                for state in (JobState.QUEUED, JobState.RUNNING):
                    jobs.add_metric([state.value], counts.get(state.value, 0))
                reservation = _reservation_model()
                if reservation is not None:
                    for state, n in session.execute(select(reservation.state, func.count())
                                                    .group_by(reservation.state)):
                        reservations.add_metric([str(state)], n)
        except Exception:  # a scrape must answer even when the database does not
            logging.getLogger("rmgr.metrics").exception("metrics: database not readable")
        yield units
        yield jobs
        yield reservations
        loaded = GaugeMetricFamily("rmgr_graph_loaded", "1 once the topology graph has been built in this process")
        staleness = GRAPH.staleness()
        loaded.add_metric([], 0 if staleness is None else 1)
        yield loaded
        if staleness is not None:
            yield GaugeMetricFamily("rmgr_graph_staleness_seconds", "Seconds since the topology graph was rebuilt",
                                    value=staleness)


def _reservation_model() -> Any:
    try:
        from resource_mgr.orders.models import Reservation  # type: ignore[import-not-found]
    except Exception:
        return None
    return Reservation


def _endpoint_label() -> str:
    return request.endpoint or ("unmatched" if request.url_rule is None else request.url_rule.rule)


def install(app: APIFlask) -> None:
    """Install before authentication so that even a 401 has a request id and is measured."""
    settings = app.extensions["rmgr"].settings
    configure_logging(settings.log_level, settings.log_json)
    registry = CollectorRegistry(auto_describe=True)
    latency = Histogram("rmgr_http_request_duration_seconds", "HTTP request latency by endpoint and status",
                        ["endpoint", "method", "status"], registry=registry,
                        buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30))
    registry.register(DatabaseCollector(app))
    app.extensions["rmgr_metrics"] = registry

    @app.before_request
    def _start() -> None:
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if _REQUEST_ID.fullmatch(given) else new_id()

    @app.after_request
    def _finish(response: Response) -> Response:
        request_id = g.get("request_id")
        if request_id:
            response.headers["X-Request-ID"] = request_id
        started = g.get("started")
        duration = time.perf_counter() - started if started is not None else 0.0
        endpoint = _endpoint_label()
        latency.labels(endpoint, request.method, str(response.status_code)).observe(duration)
        principal = g.get("principal")
        access_log.info("%s %s %s", request.method, request.path, response.status_code, extra={
            "method": request.method, "path": request.path, "endpoint": endpoint, "status": response.status_code,
            "duration_ms": round(duration * 1000, 2), "remote_addr": request.remote_addr,
            "principal_name": principal.name if principal is not None else None,
        })
        return response

    bp = APIBlueprint("metrics", __name__)

    @bp.get("/metrics")
    @bp.doc(hide=True)
    @require(Role.ADMIN, Role.AUDITOR, Role.MAINTENANCE)
    def metrics() -> Response:
        if g.principal.local_network_ids is not None:
            raise Forbidden("the metrics count every local network (and the latency of every request): "
                            "scrape with a token for all local networks (--local-network '*')",
                            field="local_networks")
        return Response(generate_latest(current_app.extensions["rmgr_metrics"]), mimetype=CONTENT_TYPE_LATEST)

    app.register_blueprint(bp)
