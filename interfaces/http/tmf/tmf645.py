"""TMF645 Service Qualification ↔ the native coverage check: reading a checkServiceQualification
request, qualifying its items (one native check per place), writing the TMF answer.

An item names the product in service.serviceSpecification.name (or .id, or service.name) with
our product codes, and the place in service.place[]: a standard address by `id`
(`@referredType: GeographicAddress`) or a GeographicAddress given by fields (name, or street,
number, city ... and geographicSubAddress), resolved like the native address_text. An item that
cannot be qualified (unknown product, no place, an address that does not resolve) is
terminatedWithError with a terminationError saying why (and which addresses come close), so the
other items of the request still get their answer."""
from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from resource_mgr.config import Settings
from resource_mgr.coverage import services as coverage
from resource_mgr.errors import DomainError
from resource_mgr.inventory.models import Address

ITEM_LIMIT = 100
ADDRESS_FIELDS = ("stateOrProvince", "city", "locality", "streetName", "streetType", "streetSuffix", "streetNr",
                  "streetNrSuffix")
SUB_ADDRESS_FIELDS = ("buildingName", "name", "subUnitNumber", "levelNumber")
RESULT_ORDER = {coverage.QUALIFIED: 0, coverage.ALTERNATE: 1, coverage.UNQUALIFIED: 2}


class BadRequest(DomainError):
    """The request as a whole cannot be read as a checkServiceQualification (400)."""

    code, status = "invalid", 400


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object", field=where)
    return value


def _string(value: Any, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise BadRequest(f"{where} must be a string", field=where)
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest(f"{where} must be an array", field=where)
    return value


@dataclass
class Item:
    index: int
    id: str
    product: str | None
    place: dict[str, Any] | None  # {"address_id"} or {"address_text"} for the native check
    role: str
    error: str | None = None  # why it cannot be qualified


def read_request(body: Any) -> tuple[dict[str, Any], list[Item]]:
    """The top-level fields we echo, and the items. Structural faults are a 400."""
    body = _object(body, "body")
    items = _list(body.get("serviceQualificationItem"), "serviceQualificationItem")
    if not items:
        raise BadRequest("serviceQualificationItem: give at least one item", field="serviceQualificationItem")
    if len(items) > ITEM_LIMIT:
        raise BadRequest(f"serviceQualificationItem: at most {ITEM_LIMIT} items", field="serviceQualificationItem")
    top: dict[str, Any] = {}
    for name in ("description", "externalId"):
        value = _string(body.get(name), name)
        if value is not None:
            top[name] = value
    for name in ("instantSyncQualification", "provideAlternative", "provideUnavailabilityReason"):
        value = body.get(name)
        if value is not None and not isinstance(value, bool):
            raise BadRequest(f"{name} must be true or false", field=name)
        top[name] = value
    return top, [_read_item(i, item) for i, item in enumerate(items)]


def _read_item(index: int, raw: Any) -> Item:
    where = f"serviceQualificationItem.{index}"
    raw = _object(raw, where)
    item_id = _string(raw.get("id"), f"{where}.id") or str(index + 1)
    service = _object(raw.get("service") if raw.get("service") is not None else {}, f"{where}.service")
    spec = _object(service.get("serviceSpecification") or {}, f"{where}.service.serviceSpecification")
    names = [_string(spec.get("name"), f"{where}.service.serviceSpecification.name"),
             _string(spec.get("id"), f"{where}.service.serviceSpecification.id"),
             _string(service.get("name"), f"{where}.service.name")]
    product = next((n for n in names if n in coverage.PRODUCTS), None)
    places = _list(service.get("place"), f"{where}.service.place")
    item = Item(index=index, id=item_id, product=product, place=None, role="installationAddress")
    if product is None:
        given = next((n for n in names if n), None)
        item.error = (f"unknown product {given[:60]!r}; one of {', '.join(coverage.PRODUCTS)}" if given else
                      "name the product in service.serviceSpecification.name")
    for j, place in enumerate(places):
        place = _object(place, f"{where}.service.place.{j}")
        item.role = _string(place.get("role"), f"{where}.service.place.{j}.role") or item.role
        item.place = _place(place, f"{where}.service.place.{j}")
        if item.place:
            break
    if item.place is None and item.error is None:
        item.error = "give the place in service.place: a GeographicAddress by id or by its fields"
    return item


def _place(place: dict[str, Any], where: str) -> dict[str, Any] | None:
    place_id = _string(place.get("id"), f"{where}.id")
    referred = place.get("@referredType") or place.get("@type") or "GeographicAddress"
    if place_id and referred in ("GeographicAddress", "GeographicAddressRef"):
        return {"address_id": place_id}
    parts = [_string(place.get(f), f"{where}.{f}") or "" for f in ADDRESS_FIELDS]
    for k, sub in enumerate(_list(place.get("geographicSubAddress"), f"{where}.geographicSubAddress")):
        sub = _object(sub, f"{where}.geographicSubAddress.{k}")
        parts += [_string(sub.get(f), f"{where}.geographicSubAddress.{k}.{f}") or "" for f in SUB_ADDRESS_FIELDS]
    text = "".join(p.strip() for p in parts) or (_string(place.get("name"), f"{where}.name") or "").strip()
    location = place.get("geographicLocation")
    if not text and isinstance(location, dict):  # a GeoJSON-like point: {"geometry": [{"x", "y"}]}
        point = _point(location)
        if point is not None:
            return {"location": {"lon": point[0], "lat": point[1]}}
    return {"address_text": text} if text else None


def _point(location: dict[str, Any]) -> tuple[float, float] | None:
    geometry = location.get("geometry")
    if isinstance(geometry, list) and geometry and isinstance(geometry[0], dict):
        try:
            lon, lat = float(geometry[0]["x"]), float(geometry[0]["y"])
        except (KeyError, TypeError, ValueError):
            return None
        return (lon, lat) if math.isfinite(lon) and math.isfinite(lat) else None
    return None


def qualify(session: Session, items: list[Item], *, local_network_ids: set[str] | frozenset[str] | None,
            settings: Settings, now: datetime) -> tuple[list[dict[str, Any]], str | None]:
    """The TMF answer of every item, and the local network of the first place that resolved."""
    answers: dict[tuple[str, str], dict[str, Any] | DomainError] = {}
    network: str | None = None
    out = []
    for item in items:
        if item.error:
            out.append(_terminated(item, item.error))
            continue
        key = next(iter(item.place.items()))
        key = (key[0], str(key[1]))
        if key not in answers:
            try:
                answers[key] = coverage.check(session, local_network_ids=local_network_ids, settings=settings,
                                              now=now, **item.place)
            except DomainError as exc:
                answers[key] = exc
        answer = answers[key]
        if isinstance(answer, DomainError):
            out.append(_terminated(item, _why(answer)))
            continue
        if network is None and answer["address"] is not None:
            address = session.get(Address, answer["address"]["id"])
            network = address.local_network_id if address is not None else None
        out.append(_item(item, answer))
    return out, network


def _why(error: DomainError) -> str:
    why = error.detail
    suggestions = error.extra.get("suggestions") or []
    if suggestions:
        why += "; closest standard addresses: " + "; ".join(f"{s['text']} (id {s['id']})" for s in suggestions)
    return why


def _service(item: Item, product: str, answer: dict[str, Any] | None, technology: dict[str, Any] | None = None
             ) -> dict[str, Any]:
    service: dict[str, Any] = {"name": product, "serviceSpecification": {"id": product, "name": product},
                               "@type": "Service"}
    address = answer["address"] if answer else None
    if address is not None:
        service["place"] = [{"id": address["id"], "name": address["text"], "role": item.role,
                             "@referredType": "GeographicAddress"}]
    if technology is not None:
        service["serviceCharacteristic"] = [
            {"name": "technology", "valueType": "string", "value": technology["technology"]},
            {"name": "maxDownMbps", "valueType": "number", "value": technology["max_down_mbps"]},
        ] if technology["max_down_mbps"] is not None else [
            {"name": "technology", "valueType": "string", "value": technology["technology"]}]
    return service


def _terminated(item: Item, why: str) -> dict[str, Any]:
    service: dict[str, Any] = {"@type": "Service"}
    if item.product:
        service.update(name=item.product, serviceSpecification={"id": item.product, "name": item.product})
    return {"id": item.id, "state": "terminatedWithError", "qualificationResult": coverage.UNQUALIFIED,
            "service": service, "terminationError": [{"value": why, "@type": "TerminationError"}],
            "eligibilityUnavailabilityReason": [{"code": "not_qualifiable", "label": why}],
            "@type": "CheckServiceQualificationItem"}


def _item(item: Item, answer: dict[str, Any]) -> dict[str, Any]:
    product = next(p for p in answer["products"] if p["product"] == item.product)  # all eight are answered
    technologies = {t["technology"]: t for t in answer["technologies"]}
    own = technologies.get(coverage.BROADBAND[item.product].value) if item.product in coverage.BROADBAND else None
    out: dict[str, Any] = {"id": item.id, "state": "done", "qualificationResult": product["result"],
                           "service": _service(item, item.product, answer, own),
                           "@type": "CheckServiceQualificationItem"}
    if product["result"] != coverage.QUALIFIED:
        codes = product["reasons"] or ["not_available"]
        out["eligibilityUnavailabilityReason"] = [
            {"code": code, "label": product["reason"] if i == 0 else code} for i, code in enumerate(codes)]
    proposals = [a for a in product["alternatives"] if a.get("kind") == "product"]
    if proposals:
        out["alternateServiceProposal"] = [
            {"id": f"{item.id}-{k + 1}", "alternateService": _service(
                item, p["product"], answer, technologies.get(p.get("technology", ""))),
             "@type": "AlternateServiceProposal"}
            for k, p in enumerate(proposals)]
    return out


def overall(items: list[dict[str, Any]]) -> str:
    """qualified when every item is, unqualified when any is, alternate otherwise."""
    return max((i["qualificationResult"] for i in items), key=lambda r: RESULT_ORDER[r])


def state(items: list[dict[str, Any]]) -> str:
    return "terminatedWithError" if all(i["state"] == "terminatedWithError" for i in items) else "done"
