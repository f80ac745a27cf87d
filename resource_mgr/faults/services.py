"""Alarms and faults (API.md, Maintenance): resolve what the network management system names,
open, update or clear a fault, each change with its history row and event in one transaction.

An alarm names a device by name or management address and maybe a port. Resolution, within the
caller's local networks: the exact name, then the management address, then the name ignoring
case; a port by its unit name (whole, or after the device name), by "slot/port" (or
"frame/slot/port", "slot-port") of a card of the device, or by its number when only one port of
the device has it. Nothing found is a 404 offering the closest names (rapidfuzz).

The same alarm again (same source, same resolved resource) while its fault is open updates that
fault — severity, last raised time, count — and opens nothing; an alarm of severity `cleared`
clears it."""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from rapidfuzz import fuzz, process
from sqlalchemy import ColumnElement, Select, func, select, true
from sqlalchemy.orm import Session

from resource_mgr.clock import aware, utcnow
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.events.services import emit
from resource_mgr.faults.errors import AlreadyCleared, UnknownDevice, UnknownPort
from resource_mgr.faults.models import FAULT_STATES, SEVERITIES, Fault, open_key
from resource_mgr.ids import new_id
from resource_mgr.inventory.models import Card, Device, LocalNetwork
from resource_mgr.occupancy.models import History, Unit

DEFAULT_CLOSE_NAMES = 5
DEFAULT_CUTOFF = 60.0
_SLOT_PORT = re.compile(r"^\s*(?:\d+\s*[/-]\s*)?(\d+)\s*[/-]\s*(\d+)\s*$")


def _scope(column: Any, local_network_ids: frozenset[str] | set[str] | None) -> ColumnElement[bool]:
    return true() if local_network_ids is None else column.in_(sorted(local_network_ids))


def _close(query: str, choices: list[str], limit: int, cutoff: float) -> list[str]:
    if not limit or not choices:
        return []
    found = process.extract(query, choices, scorer=fuzz.WRatio, limit=limit * 3, score_cutoff=cutoff)
    out: list[str] = []
    for name, _score, _i in found:  # best first, each name once
        if name not in out:
            out.append(name)
        if len(out) == limit:
            break
    return out


def _one(session: Session, stmt: Select, what: str, field: str) -> Device | None:
    rows = list(session.scalars(stmt.limit(6)))
    if len(rows) > 1:
        raise Invalid(f"{what} names {len(rows)} devices ({', '.join(sorted(d.id for d in rows))}); "
                      "name it by its management address or within one local network", field=field)
    return rows[0] if rows else None


def resolve_device(session: Session, device: str, port: str | None,
                   local_network_ids: frozenset[str] | set[str] | None, *, close_names: int = DEFAULT_CLOSE_NAMES,
                   cutoff: float = DEFAULT_CUTOFF) -> tuple[Device, Unit | None]:
    """The device an alarm names (by name or management address) and the port, if named."""
    ref = (device or "").strip()
    if not ref:
        raise Invalid("name the device (its name or management address)", field="device")
    scoped = select(Device).where(_scope(Device.local_network_id, local_network_ids))
    found = (_one(session, scoped.where(Device.name == ref), f"{ref!r}", "device")
             or _one(session, scoped.where(Device.management_ip == ref), f"address {ref!r}", "device")
             or _one(session, scoped.where(func.lower(Device.name) == ref.lower()), f"{ref!r}", "device"))
    if found is None:
        names = list(session.scalars(select(Device.name).where(_scope(Device.local_network_id, local_network_ids))))
        raise UnknownDevice(ref, _close(ref, names, close_names, cutoff))
    if port is None or not str(port).strip():
        return found, None
    return found, resolve_port(session, found, str(port).strip(), close_names=close_names, cutoff=cutoff)


def resolve_port(session: Session, device: Device, ref: str, *, close_names: int = DEFAULT_CLOSE_NAMES,
                 cutoff: float = DEFAULT_CUTOFF) -> Unit:
    units = list(session.scalars(select(Unit).where(Unit.root_id == device.id).order_by(Unit.owner_id, Unit.seq)))
    lowered = ref.lower()
    for match in (lambda u: u.name == ref, lambda u: u.name == f"{device.name}-{ref}",
                  lambda u: u.name.lower() == lowered):
        hits = [u for u in units if match(u)]
        if len(hits) == 1:
            return hits[0]
    slot_port = _SLOT_PORT.match(ref)
    if slot_port:
        slot, seq = int(slot_port.group(1)), int(slot_port.group(2))
        cards = set(session.scalars(select(Card.id).where(Card.parent_id == device.id, Card.slot == slot)))
        hits = [u for u in units if u.owner_id in cards and u.seq == seq]
        if len(hits) == 1:
            return hits[0]
    if ref.isdigit():
        hits = [u for u in units if u.seq == int(ref)]
        if len(hits) == 1:
            return hits[0]
        if len(hits) > 1:
            raise Invalid(f"port {ref} of {device.name} is ambiguous ({', '.join(u.name for u in hits[:6])}); "
                          "name it by slot/port or by its name", field="port")
    raise UnknownPort(device.name, ref, _close(ref, [u.name for u in units], close_names, cutoff))


# -- faults ---------------------------------------------------------------------------------------

@dataclass
class Raised:
    fault: Fault
    created: bool  # a new fault (201), not an update of the open one (200)


def _snapshot(fault: Fault) -> dict[str, Any]:
    return {"state": fault.state, "severity": fault.severity, "count": fault.count,
            "last_raised_at": aware(fault.last_raised_at).isoformat() if fault.last_raised_at else None,
            "cleared_at": aware(fault.cleared_at).isoformat() if fault.cleared_at else None,
            "resource_id": fault.resource_id}


def _history(session: Session, fault: Fault, action: str, principal: str, at: datetime,
             before: dict[str, Any], reason: str | None = None) -> None:
    session.add(History(at=at, principal=principal[:100], local_network_id=fault.local_network_id,
                        resource_id=fault.id, resource_kind="fault", action=action,
                        reason=reason[:300] if reason else None, before=before, after=_snapshot(fault)))


def _event_data(fault: Fault) -> dict[str, Any]:
    return {"resource_id": fault.resource_id, "resource_kind": fault.resource_kind, "device_id": fault.device_id,
            "source": fault.source, "severity": fault.severity, "device": fault.device_ref, "port": fault.port_ref,
            "raised_at": aware(fault.raised_at).isoformat()}


def check_severity(severity: str) -> str:
    value = (severity or "").strip().lower()
    if value not in SEVERITIES:
        raise Invalid(f"severity must be one of {', '.join(SEVERITIES)}", field="severity")
    return value


def raise_alarm(session: Session, *, principal: str, local_network_ids: frozenset[str] | set[str] | None,
                source: str, device: str, port: str | None = None, severity: str, raised_at: datetime,
                now: datetime | None = None, close_names: int = DEFAULT_CLOSE_NAMES,
                cutoff: float = DEFAULT_CUTOFF) -> Raised:
    """Open a fault for the alarm, or update the open one of the same alarm; `cleared` clears it."""
    now = now or utcnow()
    source = (source or "").strip()
    if not source:
        raise Invalid("name the reporting system", field="source")
    severity = check_severity(severity)
    raised_at = aware(raised_at).astimezone(timezone.utc)
    dev, unit = resolve_device(session, device, port, local_network_ids, close_names=close_names, cutoff=cutoff)
    resource_id, kind = (unit.id, unit.kind) if unit is not None else (dev.id, dev.kind)
    key = open_key(source, resource_id)
    fault = session.scalar(select(Fault).where(Fault.open_key == key).with_for_update())
    if severity == "cleared":
        if fault is None:
            raise NotFound(f"no open fault of {source} on {dev.name}{' port ' + unit.name if unit else ''} to clear",
                           field="device")
        return Raised(clear(session, fault, principal=principal, at=raised_at, reason=f"cleared by {source}",
                            now=now), False)
    if fault is not None:
        before = _snapshot(fault)
        fault.severity = severity
        fault.last_raised_at = max(aware(fault.last_raised_at), raised_at)
        fault.count += 1
        fault.updated_at = now
        _history(session, fault, "fault_raised_again", principal, now, before)
        session.flush()
        return Raised(fault, False)
    fault = Fault(id=new_id(), local_network_id=dev.local_network_id, state="open", open_key=key, source=source,
                  device_ref=device.strip(), port_ref=str(port).strip() if unit is not None else None,
                  device_id=dev.id, resource_id=resource_id, resource_kind=kind, severity=severity,
                  raised_at=raised_at, last_raised_at=raised_at, count=1, opened_by=principal[:100],
                  created_at=now, updated_at=now)
    session.add(fault)
    session.flush()
    _history(session, fault, "fault_opened", principal, now, {})
    emit(session, "fault.opened", local_network_id=fault.local_network_id, fault_id=fault.id,
         data=_event_data(fault), occurred_at=raised_at)
    session.flush()
    return Raised(fault, True)


def get_fault(session: Session, fault_id: str, local_network_ids: frozenset[str] | set[str] | None,
              *, for_update: bool = False) -> Fault:
    stmt = select(Fault).where(Fault.id == fault_id)
    fault = session.scalar(stmt.with_for_update() if for_update else stmt)
    if fault is None or (local_network_ids is not None and fault.local_network_id not in local_network_ids):
        raise NotFound(f"no fault with id {fault_id}", field="id")
    return fault


def clear(session: Session, fault: Fault, *, principal: str, at: datetime | None = None, reason: str | None = None,
          now: datetime | None = None) -> Fault:
    """The fault is over: cleared at `at` (now when not given); a cleared fault stays as it is."""
    now = now or utcnow()
    if fault.state == "cleared":
        raise AlreadyCleared(fault.id, aware(fault.cleared_at).isoformat())
    before = _snapshot(fault)
    fault.state, fault.open_key = "cleared", None
    fault.cleared_at = aware(at) if at is not None else now
    fault.cleared_by, fault.clear_reason, fault.updated_at = principal[:100], reason, now
    session.flush()
    _history(session, fault, "fault_cleared", principal, now, before, reason)
    emit(session, "fault.cleared", local_network_id=fault.local_network_id, fault_id=fault.id,
         data={**_event_data(fault), "cleared_at": fault.cleared_at.isoformat(), "reason": reason},
         occurred_at=fault.cleared_at)
    session.flush()
    return fault


def clear_fault(session: Session, fault_id: str, *, principal: str,
                local_network_ids: frozenset[str] | set[str] | None, at: datetime | None = None,
                reason: str | None = None) -> Fault:
    return clear(session, get_fault(session, fault_id, local_network_ids, for_update=True), principal=principal,
                 at=at, reason=reason)


def faults_query(local_network_ids: frozenset[str] | set[str] | None, *, state: str | None = None,
                 source: str | None = None, resource_id: str | None = None,
                 local_network_id: str | None = None) -> Select:
    """The faults a caller sees, newest raise first."""
    if state is not None and state not in FAULT_STATES:
        raise Invalid(f"state must be one of {', '.join(FAULT_STATES)}", field="state")
    stmt = select(Fault).where(_scope(Fault.local_network_id, local_network_ids))
    for column, value in ((Fault.state, state), (Fault.source, source), (Fault.resource_id, resource_id),
                          (Fault.local_network_id, local_network_id)):
        if value is not None:
            stmt = stmt.where(column == value)
    return stmt.order_by(Fault.last_raised_at.desc(), Fault.id.desc())


def fault_json(session: Session, fault: Fault, codes: dict[str, str] | None = None) -> dict[str, Any]:
    if codes is None:
        codes = {fault.local_network_id: session.scalar(
            select(LocalNetwork.code).where(LocalNetwork.id == fault.local_network_id))}

    def iso(value: datetime | None) -> str | None:
        return aware(value).astimezone(timezone.utc).isoformat() if value is not None else None

    return {"id": fault.id, "state": fault.state, "source": fault.source, "severity": fault.severity,
            "device": fault.device_ref, "port": fault.port_ref, "device_id": fault.device_id,
            "resource_id": fault.resource_id, "resource_kind": fault.resource_kind,
            "local_network": codes.get(fault.local_network_id), "raised_at": iso(fault.raised_at),
            "last_raised_at": iso(fault.last_raised_at), "count": fault.count, "opened_by": fault.opened_by,
            "cleared_at": iso(fault.cleared_at), "cleared_by": fault.cleared_by,
            "clear_reason": fault.clear_reason}
