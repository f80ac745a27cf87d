"""Maintenance and the network management system (API.md): POST /alarms, GET /faults,
GET /faults/{id}, POST /faults/{id}/clear, POST /impact and
GET /reports/single-points-of-failure.

Roles: maintenance and admin raise alarms and clear faults; maintenance, admin and auditor read
faults. Impact and the single-points-of-failure report are analyses of the inventory that
maintenance, dispatch (a field fault), planners (a cutover) and auditors need. Everything stays
within the caller's local networks: another city's fault or resource is a 404, and impact counts
only the caller's services. The topology engine (resource_mgr.topology) answers impact and the
report from the graph every process keeps current with the change feed."""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from resource_mgr.clock import aware
from resource_mgr.customers.models import Customer, Service
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.faults import services
from resource_mgr.faults.schemas import (
    AlarmIn, AlarmOut, ClearIn, FaultOut, FaultQuery, ImpactIn, ImpactOut, SpofOut, SpofQuery,
)
from resource_mgr.inventory.models import LocalNetwork, Resource
from resource_mgr.occupancy.models import Unit
from resource_mgr.orders import retry
from resource_mgr.states import Role

from interfaces.http.api.common import paginate
from interfaces.http.auth import require
from interfaces.http.context import principal, read_session, runtime

bp = APIBlueprint("faults", __name__)

FAULT_WRITERS = (Role.MAINTENANCE, Role.ADMIN)
FAULT_READERS = (Role.MAINTENANCE, Role.ADMIN, Role.AUDITOR)
IMPACT_READERS = (Role.MAINTENANCE, Role.DISPATCH, Role.PLANNER, Role.ADMIN, Role.AUDITOR)
_CHUNK = 900


def impact_of(session: Session, resource_ids: list[str], *, limit: int = 50, offset: int = 0) -> dict[str, Any]:
    """The topology engine's impact of losing these resources, counted over the caller's services."""
    from resource_mgr.topology.services import impact

    return impact(session, resource_ids, limit=limit, offset=offset,
                  local_network_ids=principal().local_network_ids)


def _local_network(session: Session, code: str | None) -> str | None:
    if not code:
        return None
    ln = session.scalar(select(LocalNetwork.id).where(LocalNetwork.code == code))
    if ln is None or not principal().sees(ln):
        raise Invalid(f"unknown local network {code!r}", field="local_network")
    return ln


def _codes(session: Session) -> dict[str, str]:
    return dict(session.execute(select(LocalNetwork.id, LocalNetwork.code)).all())


def _known_ids(session: Session, ids: list[str]) -> list[str]:
    """The ids (resources or units) that exist within the caller's local networks, as given."""
    scope = principal()
    found: set[str] = set()
    for i in range(0, len(ids), _CHUNK):
        chunk = ids[i:i + _CHUNK]
        for model in (Resource, Unit):
            found |= set(session.scalars(select(model.id).where(model.id.in_(chunk),
                                                                  scope.scope_filter(model.local_network_id))))
    return [i for i in ids if i in found]


# -- alarms and faults ------------------------------------------------------------------------------

@bp.post("/alarms")
@bp.input(AlarmIn, arg_name="body")
@bp.output(AlarmOut, status_code=201)
@bp.doc(summary="An alarm of the network management system: open a fault (201) or update the open one (200), "
                "with its impact",
        responses={200: "The same alarm again while its fault is open (or `cleared`): the same fault, updated",
                   404: "No device of that name or management address, or no such port (close_names); for "
                        "severity `cleared`, no open fault of that alarm",
                   422: "A name that fits several devices or ports"})
@require(*FAULT_WRITERS)
def raise_alarm(body: dict[str, Any]):
    rt, who = runtime(), principal()

    def use_case(uow: Any) -> tuple[dict[str, Any], bool]:
        s = uow.session
        raised = services.raise_alarm(
            s, principal=who.name, local_network_ids=who.local_network_ids, source=body["source"],
            device=body["device"], port=body.get("port"), severity=body["severity"],
            raised_at=aware(body["raised_at"]), close_names=rt.settings.fault_close_names,
            cutoff=rt.settings.fault_close_names_cutoff)
        fault = raised.fault
        return {"fault_id": fault.id, "resource_id": fault.resource_id, "state": fault.state,
                "count": fault.count, "fault": services.fault_json(s, fault)}, raised.created

    out, created = retry.run(rt.db, who.name, rt.settings.orders_retry_attempts, use_case)
    # after the commit: the engine's answer then reflects every change committed before it
    out["impact"] = impact_of(read_session(), [out["resource_id"]]) if out["state"] == "open" else None
    return out, 201 if created else 200


@bp.get("/faults")
@bp.input(FaultQuery, location="query", arg_name="query")
@bp.output(FaultOut(many=True))
@bp.doc(summary="Faults (state=open|cleared), the latest raised first; total in X-Total-Count")
@require(*FAULT_READERS)
def list_faults(query: dict[str, Any]):
    session = read_session()
    stmt = services.faults_query(principal().local_network_ids, state=query.get("state"),
                                 source=query.get("source"), resource_id=query.get("resource_id"),
                                 local_network_id=_local_network(session, query.get("local_network")))
    rows, headers = paginate(session, stmt, query["limit"], query["offset"])
    codes = _codes(session)
    return [services.fault_json(session, f, codes) for f in rows], 200, headers


@bp.get("/faults/<string:fault_id>")
@bp.output(FaultOut)
@bp.doc(summary="One fault")
@require(*FAULT_READERS)
def get_fault(fault_id: str):
    session = read_session()
    return services.fault_json(session, services.get_fault(session, fault_id, principal().local_network_ids))


@bp.post("/faults/<string:fault_id>/clear")
@bp.input(ClearIn, arg_name="body")
@bp.output(FaultOut)
@bp.doc(summary="Clear the fault", responses={409: "Already cleared (conflict)"})
@require(*FAULT_WRITERS)
def clear_fault(fault_id: str, body: dict[str, Any]):
    rt, who = runtime(), principal()
    at = body.get("cleared_at")

    def use_case(uow: Any) -> dict[str, Any]:
        fault = services.clear_fault(uow.session, fault_id, principal=who.name,
                                     local_network_ids=who.local_network_ids, at=aware(at) if at else None,
                                     reason=body.get("reason"))
        return services.fault_json(uow.session, fault)

    return retry.run(rt.db, who.name, rt.settings.orders_retry_attempts, use_case)


# -- impact and single points of failure -------------------------------------------------------------

@bp.post("/impact")
@bp.input(ImpactIn, arg_name="body")
@bp.output(ImpactOut)
@bp.doc(summary="Who is down and who is degraded if these resources fail",
        responses={404: "An id that names no resource or unit of yours (unknown_ids)"})
@require(*IMPACT_READERS)
def post_impact(body: dict[str, Any]):
    session = read_session()
    ids = list(dict.fromkeys(body["resource_ids"]))
    known = set(_known_ids(session, ids))
    unknown = [i for i in ids if i not in known]
    if unknown:
        shown = ", ".join(unknown[:10]) + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else "")
        raise NotFound(f"no resource or unit with id {shown}", field="resource_ids", unknown_ids=unknown[:100])
    return impact_of(session, ids, limit=body["limit"], offset=body["offset"])


def spof_report(session: Session, *, local_network_ids: frozenset[str] | set[str] | None, grade: str,
                limit: int, offset: int) -> list[dict[str, Any]]:
    from resource_mgr.topology.services import single_points_of_failure

    return single_points_of_failure(session, local_network_ids=local_network_ids, grade=grade, limit=limit,
                                    offset=offset)


@bp.get("/reports/single-points-of-failure")
@bp.input(SpofQuery, location="query", arg_name="query")
@bp.output(SpofOut(many=True))
@bp.doc(summary="For each service of customers of that grade, the resources whose loss alone takes it down")
@require(*IMPACT_READERS)
def single_points_of_failure(query: dict[str, Any]):
    session = read_session()
    ln = _local_network(session, query.get("local_network"))
    scope = principal().local_network_ids if ln is None else frozenset({ln})
    rows = spof_report(session, local_network_ids=scope, grade=query["grade"], limit=query["limit"],
                       offset=query["offset"])
    return rows, 200, {"X-Total-Count": str(_graded_services(session, scope, query["grade"]))}


def _graded_services(session: Session, scope: frozenset[str] | None, grade: str) -> int:
    """How many services the whole report has: the live services of customers of that grade."""
    from resource_mgr.topology.graph import LIVE

    stmt = (select(func.count()).select_from(Service).join(Customer, Customer.id == Service.customer_id)
            .where(Customer.grade == grade, Service.state.in_(LIVE)))
    if scope is not None:
        stmt = stmt.where(Service.local_network_id.in_(sorted(scope)))
    return session.scalar(stmt) or 0
