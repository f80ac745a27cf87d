"""Helpers for the security, role, history and limits tests: an app on the test database, two
local networks with real inventory, users and tokens. (Imported by tests; not fixtures.)"""
from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlalchemy import select

from resource_mgr.clock import utcnow
from resource_mgr.config import Settings
from resource_mgr.db import Database
from resource_mgr.inventory import services as inv
from resource_mgr.inventory.models import Site
from resource_mgr.jobs.models import Job
from resource_mgr.occupancy.models import Change, Unit
from resource_mgr.security import services
from resource_mgr.security.models import PrincipalTrust
from resource_mgr.states import Role

from interfaces.http.app import create_app

PASSWORD = "correct horse battery"


def ensure_security_tables(database: Database) -> None:
    """The migrated schema has the security tables (a missing migration fails here, loudly)."""
    names = set(sa_inspect(database.engine).get_table_names())
    missing = {"app_user", "api_token", PrincipalTrust.__tablename__} - names
    assert not missing, f"the migrations do not create {sorted(missing)}"


def make_app(database: Database, **overrides: Any):
    values: dict[str, Any] = {"database_url": database.url, "testing": True, "ratelimit_default": "100000/minute"}
    values.update(overrides)
    app = create_app(Settings(**values), database=database)
    return app


def build_world(database: Database) -> dict[str, Any]:
    """Two local networks, GZ (A) and SZ (B), each with a site, a distribution box (units), a job
    and a history row on one of its units."""
    ensure_security_tables(database)
    out: dict[str, Any] = {}
    with database.unit_of_work() as uow:
        s = uow.session
        inv.seed_default_templates(s)
        for key, code, name, area in (("A", "GZ", "廣州", "20"), ("B", "SZ", "深圳", "755")):
            ln = inv.create_local_network(s, code=code, name=name, area_code=area)
            site = inv.add_resource(s, Site(name=f"{code}-TH", local_network_id=ln.id))
            box = inv.create_from_template(s, template="DIST-BOX-10", local_network_id=ln.id, site_id=site.id)
            s.flush()
            unit = s.scalar(select(Unit).where(Unit.owner_id == box.id).order_by(Unit.seq))
            now = utcnow()
            unit.preoccupy(Change(f"user:seed-{code.lower()}", order_ref=f"ORD-{code}", at=now),
                           reservation_id=f"R-{code}", until=now + timedelta(hours=1))
            job = Job(kind="import", local_network_id=ln.id, created_by="system")
            s.add(job)
            s.flush()
            out[key] = {"ln": ln.id, "code": code, "site": site.id, "box": box.id, "unit": unit.id, "job": job.id,
                        "order_ref": f"ORD-{code}"}
        uow.commit()
    return out


def make_user(database: Database, username: str, roles: list[str], networks: list[str]) -> None:
    with database.unit_of_work() as uow:
        services.create_user(uow.session, username=username, password=PASSWORD, roles=roles, local_networks=networks)
        uow.commit()


def issue(database: Database, roles: list[str] | list[Role], networks: list[str] | None = None, *,
          user: str | None = None, system: str | None = None, expires_at: Any = None) -> tuple[str, str]:
    """A token (id, secret). Without user or system, a user named after the roles is created."""
    roles = [r.value if isinstance(r, Role) else r for r in roles]
    networks = networks or ["*"]
    if not user and not system:
        user = ("u-" + "-".join(sorted(roles)) + "-" + "-".join(n.replace("*", "all") for n in networks)).lower()[:60]
        with database.read_session() as s:
            from resource_mgr.security.models import User

            exists = s.scalar(select(User.id).where(User.username == user))
        if not exists:
            make_user(database, user, roles, networks)
    with database.unit_of_work() as uow:
        token, secret = services.create_token(uow.session, roles=roles, local_networks=networks, user=user,
                                              system=system, expires_at=expires_at)
        uow.commit()
        return token.id, secret


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
