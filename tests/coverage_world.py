"""Networks for the coverage tests: the generator's XS city (one exchange, real FTTH trees, copper
and LAN), imported through the bulk importer, then changed by hand where a test needs a case
(a box full, a PON port full, a loop too long ...). Helpers, not fixtures."""
from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import select

from resource_mgr.bulk.generator import generate
from resource_mgr.bulk.importer import import_bundle
from resource_mgr.clock import utcnow
from resource_mgr.config import Settings, load_settings
from resource_mgr.design import qualify
from resource_mgr.design.trace import clear_topology_cache
from resource_mgr.ids import new_id
from resource_mgr.inventory.models import Address, Coverage
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import Change, Unit
from resource_mgr.states import Technology
from tests import snapshot_helpers as snapshots
from tests.snapshot_helpers import Snapshot

SEED = 5
_BUNDLES: dict[int, Path] = {}
_IMPORTED: dict[tuple[str, int], Snapshot] = {}  # (database url, seed) → the rows the import wrote


def load_xs(db, tmp_path_factory) -> Settings:
    """The XS city in the (empty) test database; the bundle is generated and imported once per
    session, later tests get the imported rows back (tests/snapshot_helpers.py: ~20x faster)."""
    if SEED not in _BUNDLES:
        out = tmp_path_factory.mktemp("xs") / "city"
        generate("XS", SEED, out, as_of=datetime.now(timezone.utc).replace(microsecond=0))
        _BUNDLES[SEED] = out
    key = (db.url, SEED)
    if key in _IMPORTED and snapshots.is_empty(db):
        snapshots.put_back(db, _IMPORTED[key])
    else:
        empty = snapshots.is_empty(db)
        assert import_bundle(db, str(_BUNDLES[SEED])).written
        if empty:
            _IMPORTED[key] = snapshots.take(db)
    clear_topology_cache()  # the design's per-process topology of the city a previous test loaded
    return load_settings(environ={}, database_url=db.url, testing=True)


def addresses(session, level: str | None = None, limit: int = 400) -> list[Address]:
    stmt = select(Address).order_by(Address.id).limit(limit * 4)
    found = list(session.scalars(stmt))
    if level:
        found = [a for a in found if a.level == level]
    return found[:limit]


def find(session, settings: Settings, technology: Technology, test, level: str | None = "room",
         limit: int = 400) -> tuple[Address, Any]:
    """The first address (in id order) whose qualify answer for `technology` passes `test`."""
    for address in addresses(session, level, limit):
        answer = qualify(session, address_id=address.id, technology=technology, settings=settings, now=utcnow())
        if test(answer):
            return address, answer
    raise AssertionError(f"no address in the XS city where {technology} passes the test")


def hold(uow, unit_ids: list[str], *, times: int = 1) -> None:
    """Pre-occupy units for other orders (a shared unit once per `times`)."""
    until = utcnow() + timedelta(days=3)
    for _ in range(times):
        rid = new_id()
        ledger.preoccupy(uow.session, unit_ids, Change(principal="test", reservation_id=rid, order_ref=rid),
                         reservation_id=rid, until=until)


def free_ports(session, box_id: str) -> list[str]:
    return list(session.scalars(select(Unit.id).where(Unit.root_id == box_id, Unit.kind == "box_port",
                                                      Unit.occupancy == "free", Unit.admin_state == "in_service")))


def fill_pon(db, pon_id: str, settings: Settings) -> None:
    """Hold every place left on a PON port."""
    with db.unit_of_work() as uow:
        unit = uow.session.get(Unit, pon_id)
        room = min(unit.capacity, settings.design_max_onts_per_pon) - unit.used - len(unit.active_holds(utcnow()))
        if room > 0:
            hold(uow, [pon_id], times=room)
        uow.commit()


def coverage_of(session, address_id: str) -> list[Coverage]:
    return list(session.scalars(select(Coverage).where(Coverage.address_id == address_id)))


class Served:
    """A real HTTP server (waitress, a thread) of the app on a free port of 127.0.0.1."""

    def __init__(self, app: Any) -> None:
        import waitress

        self.server = waitress.create_server(app, host="127.0.0.1", port=0, threads=4, ident="rmgr-cov",
                                             asyncore_loop_timeout=0.2)
        self.server.stopping = False
        self.url = f"http://127.0.0.1:{self.server.effective_port}"
        self.thread = threading.Thread(target=self._run, name="waitress-coverage", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.server.run()
        except (OSError, ValueError):
            if not self.server.stopping:
                raise

    def stop(self) -> None:
        from waitress import wasyncore

        self.server.stopping = True
        self.server.task_dispatcher.shutdown()
        wasyncore.close_all(self.server._map)
        self.thread.join(timeout=5)


class Live:
    """The XS city served over HTTP, with tokens: `sales_fs` (sales, FS: the city's network),
    `sales_gz` (sales, another local network GZ), `reader` (auditor, every network)."""

    def __init__(self, db, settings: Settings, served: Served) -> None:
        import requests

        self.db, self.settings, self.served, self.url = db, settings, served, served.url
        self.http = requests.Session()
        self.tokens: dict[str, str] = {}

    def token(self, name: str, roles: list[str], networks: list[str]) -> str:
        from resource_mgr.security import services as security
        from resource_mgr.security.models import User

        with self.db.unit_of_work() as uow:
            uow.session.add(User(username=f"cov-{name}", password_hash="!", roles=sorted(roles),
                                 local_networks=sorted(networks)))
            uow.session.flush()
            _, secret = security.create_token(uow.session, roles=roles, local_networks=networks, user=f"cov-{name}")
            uow.commit()
        self.tokens[name] = secret
        return secret

    def headers(self, token: str | None = "sales_fs") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens.get(token, token)}"} if token else {}

    def check(self, body: Any, token: str | None = "sales_fs", **kwargs: Any):
        return self.http.post(self.url + "/api/v1/coverage/check", json=body, headers=self.headers(token),
                              timeout=60, **kwargs)


def live_xs(db, tmp_path_factory, **overrides: Any):
    """Yields a Live server of the XS city (a generator for a fixture)."""
    from resource_mgr.inventory.services import create_local_network

    from interfaces.http.app import create_app

    settings = load_xs(db, tmp_path_factory)
    with db.unit_of_work() as uow:
        create_local_network(uow.session, code="GZ", name="廣州", area_code="20")
        uow.commit()
    settings = load_settings(environ={}, database_url=db.url, testing=True, ratelimit_default="100000/minute",
                             **overrides)
    served = Served(create_app(settings, database=db))
    live = Live(db, settings, served)
    live.token("sales_fs", ["sales"], ["FS"])
    live.token("sales_gz", ["sales"], ["GZ"])
    live.token("reader", ["auditor"], ["*"])
    try:
        yield live
    finally:
        live.http.close()
        served.stop()


def empty_spot(points: list[Any], near: Any, clear_m: float = 200.0) -> tuple[float, float]:
    """A point within a few km of `near` with no address within `clear_m` of it."""
    import math

    m_lat = 1 / 111_195.0
    m_lon = m_lat / math.cos(math.radians(near.y))
    for step in range(1, 60):
        for dx, dy in ((1, 0), (0, 1), (-1, 0), (0, -1), (1, 1), (-1, -1)):
            lon, lat = near.x + dx * step * 100 * m_lon, near.y + dy * step * 100 * m_lat
            if all(math.hypot((p.x - lon) / m_lon, (p.y - lat) / m_lat) > clear_m for p in points if p is not None):
                return lon, lat
    raise AssertionError("the city has no empty spot")
