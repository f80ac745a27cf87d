"""The wire shapes of alarms, faults, impact and the single-points-of-failure report (API.md,
Maintenance), as marshmallow schemas: the HTTP layer validates and documents with them."""
from __future__ import annotations

from marshmallow import Schema
from marshmallow.fields import Boolean, DateTime, Dict, Integer, List, Nested, Raw, String
from marshmallow.validate import Length, OneOf, Range

from resource_mgr.faults.models import FAULT_STATES, SEVERITIES
from resource_mgr.states import CustomerGrade

MAX_IMPACT_IDS = 10_000


class AlarmIn(Schema):
    source = String(required=True, validate=Length(1, 100),
                    metadata={"description": "the reporting network management system"})
    device = String(required=True, validate=Length(1, 200),
                    metadata={"description": "the device's name or management address"})
    port = String(allow_none=True, validate=Length(1, 100), metadata={
        "description": "the port: its name, slot/port (or frame/slot/port), or its number on the device"})
    severity = String(required=True, validate=OneOf(SEVERITIES), metadata={
        "description": "ITU-T X.733 perceived severity; `cleared` clears the open fault of that alarm"})
    raised_at = DateTime(required=True, metadata={"description": "ISO 8601 with offset"})


class ImpactServiceOut(Schema):
    id = String()
    product = String()
    customer = Raw(allow_none=True, metadata={"description": "the customer (name, or id, name and grade)"})
    vip = Boolean()
    number = String(allow_none=True)
    address_id = String(allow_none=True)


class ImpactOut(Schema):
    down_count = Integer()
    degraded_count = Integer()
    by_product = Dict(metadata={"description": "product → {down, degraded}"})
    by_area = Dict(metadata={"description": "area name → {down, degraded}"})
    services = List(Nested(ImpactServiceOut), metadata={"description": "down services, VIPs first, paged"})
    degraded_services = List(Nested(ImpactServiceOut), metadata={"description": "degraded services, VIPs first, paged"})
    affected_resources_count = Integer()


class FaultOut(Schema):
    id = String()
    state = String(metadata={"enum": list(FAULT_STATES)})
    source = String()
    severity = String()
    device = String(metadata={"description": "as the alarm named it"})
    port = String(allow_none=True, metadata={"description": "as the alarm named it"})
    device_id = String()
    resource_id = String(metadata={"description": "the port's unit id when a port was named, else the device's"})
    resource_kind = String()
    local_network = String()
    raised_at = String(metadata={"format": "date-time"})
    last_raised_at = String(metadata={"format": "date-time"})
    count = Integer(metadata={"description": "how many times the alarm was raised while open"})
    opened_by = String()
    cleared_at = String(allow_none=True, metadata={"format": "date-time"})
    cleared_by = String(allow_none=True)
    clear_reason = String(allow_none=True)


class AlarmOut(Schema):
    fault_id = String()
    resource_id = String()
    state = String()
    count = Integer()
    fault = Nested(FaultOut)
    impact = Nested(ImpactOut, allow_none=True)


class FaultQuery(Schema):
    limit = Integer(load_default=50, validate=Range(1, 1000))
    offset = Integer(load_default=0, validate=Range(0, 10_000_000))
    state = String(validate=OneOf(FAULT_STATES))
    source = String(validate=Length(1, 100))
    resource_id = String(validate=Length(1, 26))
    local_network = String(validate=Length(1, 16), metadata={"description": "local network code"})


class ClearIn(Schema):
    cleared_at = DateTime(metadata={"description": "when the fault ended (default: now)"})
    reason = String(validate=Length(1, 300))


class ImpactIn(Schema):
    resource_ids = List(String(validate=Length(1, 26)), required=True, validate=Length(1, MAX_IMPACT_IDS),
                        metadata={"description": "any resources or units: site, device, card, port, splitter, "
                                                 "box, cable, pair/core, duct segment, manhole ..."})
    limit = Integer(load_default=50, validate=Range(1, 1000))
    offset = Integer(load_default=0, validate=Range(0, 10_000_000))


class SpofQuery(Schema):
    local_network = String(validate=Length(1, 16), metadata={"description": "local network code"})
    grade = String(load_default="vip", validate=OneOf([g.value for g in CustomerGrade]))
    limit = Integer(load_default=50, validate=Range(1, 1000))
    offset = Integer(load_default=0, validate=Range(0, 10_000_000))


class SpofResourceOut(Schema):
    id = String()
    kind = String()
    name = String()


class SpofOut(Schema):
    service_id = String()
    customer = Raw(allow_none=True, metadata={"description": "the customer (name, or id, name and grade)"})
    resources = List(Nested(SpofResourceOut))
