"""Coverage check (覆蓋查詢, 資源預判): can this address get fibre, DSL, a phone line, and which of
our products, with the reasons a sales counter can read out.

Per technology the answer is `resource_mgr.design.qualify`, the same design orders use to
pre-occupy, so a check that says "available" and the order that follows never disagree. The
products are derived from the technologies: a broadband product needs its access technology,
NGN phone an access gateway line port or a fibre line, IPTV and VoIP a broadband bearer."""
from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.addresses import (
    address_json, ancestors, local_network_of_point, nearest_boxes, normalise, resolve_point, search_addresses,
)
from resource_mgr.config import Settings
from resource_mgr.customers.models import Service
from resource_mgr.design import qualify_all
from resource_mgr.errors import Invalid, NotFound
from resource_mgr.inventory.models import Address
from resource_mgr.states import Product, ServiceState, Technology

TECHNOLOGIES = (Technology.FTTH, Technology.ADSL, Technology.VDSL, Technology.POTS, Technology.LAN)
PRODUCTS = tuple(p.value for p in Product)
# A broadband product and the access technology it is delivered on.
BROADBAND = {Product.FTTH_BROADBAND.value: Technology.FTTH, Product.VDSL_BROADBAND.value: Technology.VDSL,
             Product.ADSL_BROADBAND.value: Technology.ADSL, Product.LAN_BROADBAND.value: Technology.LAN}
# Order of preference when proposing another broadband product: the fastest first.
BROADBAND_PREFERENCE = (Product.FTTH_BROADBAND.value, Product.LAN_BROADBAND.value, Product.VDSL_BROADBAND.value,
                        Product.ADSL_BROADBAND.value)
RIDERS = {Product.IPTV.value: ("IPTV", "IPTV"), Product.VOIP.value: ("VoIP", "VoIP")}
QUALIFIED, UNQUALIFIED, ALTERNATE = "qualified", "unqualified", "alternate"


def check(session: Session, *, local_network_ids: set[str] | frozenset[str] | None,
          address_id: str | None = None, address_text: str | None = None,
          location: dict[str, Any] | None = None, products: Sequence[str] | None = None,
          settings: Settings, now: datetime, min_down_mbps: float | None = None) -> dict[str, Any]:
    """The native coverage answer (API.md "Sales counter"): `address`, `technologies`, `products`.
    Exactly one of address_id, address_text, location; `products` default every product.
    A pure read: nothing is locked or held."""
    wanted = _products(products)
    address = resolve_address(session, local_network_ids=local_network_ids, address_id=address_id,
                              address_text=address_text, location=location, settings=settings)
    if isinstance(address, tuple):  # a location with no standard address near it
        return _no_address_answer(session, address, wanted, local_network_ids=local_network_ids, settings=settings)
    # one design search for all of them: the serving boxes of each medium, the topology and the
    # state of the plant they share are read once
    answers_by_tech = qualify_all(session, address_id=address.id, technologies=TECHNOLOGIES, settings=settings,
                                  now=now, min_down_mbps=min_down_mbps)
    technologies = dict(zip(TECHNOLOGIES, answers_by_tech))
    bearer = _live_broadband(session, address.id)
    ngn = _ngn_line(session, technologies, settings)
    answers = {p: _product(p, technologies, bearer, ngn) for p in PRODUCTS}
    return {
        "address": address_json(address),
        "technologies": [_technology_json(technologies[t]) for t in TECHNOLOGIES],
        "products": [answers[p] for p in wanted],
    }


# -- input --------------------------------------------------------------------------------------

def _products(products: Sequence[str] | None) -> list[str]:
    if products is None:
        return list(PRODUCTS)
    if isinstance(products, str) or not products:
        raise Invalid("products: give a list of one or more product codes", field="products")
    out: list[str] = []
    for i, code in enumerate(products):
        if code not in PRODUCTS:
            raise Invalid(f"products: unknown product {str(code)[:40]!r}; one of {', '.join(PRODUCTS)}",
                          field=f"products.{i}")
        if code not in out:
            out.append(code)
    return out


def resolve_address(session: Session, *, local_network_ids: set[str] | frozenset[str] | None,
                    address_id: str | None = None, address_text: str | None = None,
                    location: dict[str, Any] | None = None, settings: Settings,
                    field_prefix: str = "") -> Address | tuple[float, float]:
    """The standard address the check is about, or for a location with no address within reach
    of it the point itself. Out of scope is not found, as if it did not exist."""
    given = [name for name, value in (("address_id", address_id), ("address_text", address_text),
                                      ("location", location)) if value is not None]
    if len(given) != 1:
        raise Invalid("give exactly one of address_id, address_text, location"
                      + (f" (got {', '.join(given)})" if given else ""),
                      field=field_prefix + (given[1] if len(given) > 1 else "address_id"))
    scope = set(local_network_ids) if local_network_ids is not None else None
    if address_id is not None:
        address = session.get(Address, address_id) if address_id else None
        if address is None or (scope is not None and address.local_network_id not in scope):
            raise NotFound(f"no address with id {address_id}", field=field_prefix + "address_id")
        return address
    if address_text is not None:
        return _by_text(session, address_text, scope, settings, field_prefix + "address_text")
    return _by_point(session, location, scope, settings, field_prefix + "location")


def _by_text(session: Session, text: str, scope: set[str] | None, settings: Settings, field: str) -> Address:
    if not text.strip():
        raise Invalid("address_text is empty", field=field)
    hits, _total = search_addresses(session, text.strip(), local_network_ids=scope,
                                    limit=settings.coverage_text_suggestions, settings=settings)
    best = _confident(session, text, hits, settings)
    if best is not None:
        return best
    raise NotFound(f"no standard address matches {text.strip()[:100]!r} closely enough"
                   + ("; see the suggestions" if hits else ""), field=field,
                   suggestions=[address_json(h.address) for h in hits])


def _confident(session: Session, text: str, hits: list[Any], settings: Settings) -> Address | None:
    """The address meant, if the hits say so: one whose whole text is what was typed; else the
    best, when it scores well and every hit close to it lies inside it (its units and rooms:
    typing a unit's address finds its rooms too)."""
    key = normalise(text)
    for hit in hits:
        if hit.address.search_key == key:
            return hit.address
    if not hits or hits[0].score < settings.coverage_text_min_score:
        return None
    best = hits[0]
    close = [h for h in hits[1:] if best.score - h.score < settings.coverage_text_margin]
    if all(best.address.id in ancestors(session, h.address.id)[1:] for h in close):
        return best.address
    return None


def _by_point(session: Session, location: Any, scope: set[str] | None, settings: Settings,
              field: str) -> Address | tuple[float, float]:
    try:
        lon, lat = float(location["lon"]), float(location["lat"])
    except (TypeError, KeyError, ValueError):
        raise Invalid("location must be {\"lon\": number, \"lat\": number}", field=field) from None
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise Invalid("location: lon must be within -180..180 and lat within -90..90", field=field)
    network = local_network_of_point(session, (lon, lat), settings=settings)
    if network is None or (scope is not None and network not in scope):
        raise Invalid("the location is outside every local network you may work in", field=field)
    address = resolve_point(session, (lon, lat), local_network_ids={network}, settings=settings)
    return address if address is not None else (lon, lat)


# -- technologies -------------------------------------------------------------------------------

def _technology_json(answer: Any) -> dict[str, Any]:
    design = answer.design
    out = {
        "technology": str(answer.technology),
        "available": answer.available,
        "free_capacity": answer.free_capacity,
        "serving_box": answer.serving_box,
        "max_down_mbps": answer.max_down_mbps,
        "reason": answer.reason,
        "reason_zh": answer.reason_zh,
        "reasons": list(answer.reasons),
        "alternatives": list(answer.alternatives),
    }
    if design is not None:  # what the reason is computed from: loop length, optical budget
        out.update(loop_m=design.loop_m, loss_db=design.loss_db, optic_class=design.optic_class,
                   budget_db=design.budget_db)
    return out


def _live_broadband(session: Session, address_id: str) -> Service | None:
    """A live broadband service at the address, which IPTV or VoIP can ride on."""
    return session.scalars(
        select(Service).where(Service.address_id == address_id, Service.product.in_(list(BROADBAND)),
                              Service.state == ServiceState.ACTIVE).order_by(Service.created_at).limit(1)
    ).first()


def _ngn_line(session: Session, technologies: dict[Technology, Any], settings: Settings) -> str | None:
    """How an NGN phone would be delivered here: "fibre" (the ONT's voice port on an FTTH line),
    "copper" (a line port of an access gateway), or None."""
    if technologies[Technology.FTTH].available:
        return "fibre"
    pots = technologies[Technology.POTS]
    design = pots.design if pots.available else None
    if design is not None and design.line_port_switch_id:  # the switch's facts came with the design
        types = {t.strip() for t in settings.coverage_ngn_line_device_types.split(",")}
        technologies = {t.strip() for t in settings.coverage_ngn_line_technologies.split(",")}
        if design.line_port_switch_type in types or (design.line_port_switch_technology or "") in technologies:
            return "copper"
    return None


# -- products -----------------------------------------------------------------------------------

def _entry(product: str, result: str, reason: str, reason_zh: str, alternatives: list[dict[str, Any]],
           reasons: list[str] | None = None) -> dict[str, Any]:
    return {"product": product, "result": result, "reason": reason, "reason_zh": reason_zh,
            "reasons": reasons or [], "alternatives": alternatives}


def _offer(product: str, technology: str, answer: Any = None, why: str = "") -> dict[str, Any]:
    offer: dict[str, Any] = {"kind": "product", "product": product, "technology": technology}
    if answer is not None:
        offer.update(max_down_mbps=answer.max_down_mbps, serving_box=answer.serving_box)
    if why:
        offer["detail"] = why
    return offer


def _product(product: str, techs: dict[Technology, Any], bearer: Service | None, ngn: str | None) -> dict[str, Any]:
    if product in BROADBAND:
        return _broadband(product, techs)
    if product == Product.POTS.value:
        answer = techs[Technology.POTS]
        if answer.available:
            return _entry(product, QUALIFIED, f"a copper line to a switch line port is available: {answer.reason}",
                          f"可提供銅纜電話線路：{answer.reason_zh}", [], answer.reasons)
        offers = [_offer(Product.NGN_PHONE.value, "FTTH" if ngn == "fibre" else "POTS",
                         techs[Technology.FTTH] if ngn == "fibre" else answer,
                         "a phone line as NGN phone instead")] if ngn else []
        return _entry(product, ALTERNATE if offers else UNQUALIFIED,
                      f"no copper phone line: {answer.reason}" + ("; an NGN phone can be had" if offers else ""),
                      f"無法提供銅纜電話：{answer.reason_zh}" + ("；可改辦NGN電話" if offers else ""),
                      offers + list(answer.alternatives), answer.reasons)
    if product == Product.NGN_PHONE.value:
        if ngn == "fibre":
            return _entry(product, QUALIFIED, "an NGN phone rides the fibre line (ONT voice port): FTTH is available",
                          "NGN電話可經光纖（ONT語音口）開通：可裝光纖", [], [])
        if ngn == "copper":
            return _entry(product, QUALIFIED, "an NGN phone on a copper line to an access gateway line port",
                          "NGN電話可經銅纜接入接入網關線路端口", [], [])
        pots = techs[Technology.POTS]
        offers = [_offer(Product.POTS.value, "POTS", pots, "a PSTN phone line instead")] if pots.available else []
        return _entry(product, ALTERNATE if offers else UNQUALIFIED,
                      "no NGN phone: no fibre line and no access gateway line port here"
                      + ("; a PSTN phone line can be had" if offers else ""),
                      "無法提供NGN電話：既無光纖，也無接入網關線路端口" + ("；可改辦普通電話" if offers else ""),
                      offers, ["no_ngn_line"])
    return _rider(product, techs, bearer)


def _broadband(product: str, techs: dict[Technology, Any]) -> dict[str, Any]:
    technology = BROADBAND[product]
    answer = techs[technology]
    if answer.available:
        rate = f" up to {answer.max_down_mbps:g} Mbit/s" if answer.max_down_mbps else ""
        rate_zh = f"，最高 {answer.max_down_mbps:g} Mbit/s" if answer.max_down_mbps else ""
        return _entry(product, QUALIFIED, f"{technology.value} is available{rate}: {answer.reason}",
                      f"可提供{technology.value}{rate_zh}：{answer.reason_zh}", [], answer.reasons)
    offers = [_offer(other, BROADBAND[other].value, techs[BROADBAND[other]],
                     f"{BROADBAND[other].value} broadband instead")
              for other in BROADBAND_PREFERENCE if other != product and techs[BROADBAND[other]].available]
    names = ", ".join(o["product"] for o in offers)
    return _entry(product, ALTERNATE if offers else UNQUALIFIED,
                  f"{technology.value} is not available: {answer.reason}" + (f"; available instead: {names}" if offers else ""),
                  f"無法提供{technology.value}：{answer.reason_zh}" + (f"；可改辦：{names}" if offers else ""),
                  offers + list(answer.alternatives), answer.reasons)


def _rider(product: str, techs: dict[Technology, Any], bearer: Service | None) -> dict[str, Any]:
    """IPTV and VoIP occupy nothing of their own: they ride a broadband service (the bearer)."""
    name, name_zh = RIDERS[product]
    if bearer is not None:
        return _entry(product, QUALIFIED, f"{name} rides the live broadband service {bearer.id} ({bearer.product}) here",
                      f"{name_zh}可承載於此地址現有寬帶業務 {bearer.id}（{bearer.product}）", [], ["bearer_live"])
    possible = [p for p in BROADBAND_PREFERENCE if techs[BROADBAND[p]].available]
    if possible:
        return _entry(product, QUALIFIED, f"{name} rides a new broadband service: {', '.join(possible)} can be had here",
                      f"{name_zh}需隨新裝寬帶開通：此地址可裝 {', '.join(possible)}", [],
                      ["bearer_qualified"])
    return _entry(product, UNQUALIFIED, f"{name} needs a broadband service: there is none here and none can be had",
                  f"{name_zh}需承載於寬帶業務：此地址既無現有寬帶，也無法新裝", [], ["no_bearer"])


# -- a location with no standard address --------------------------------------------------------

def _no_address_answer(session: Session, point: tuple[float, float], wanted: list[str], *,
                       local_network_ids: set[str] | frozenset[str] | None, settings: Settings) -> dict[str, Any]:
    """Nothing can be designed without a standard address; say which boxes are near the point,
    so the counter knows whether registering the address is worth it."""
    network = local_network_of_point(session, point, settings=settings)
    near: dict[str, Any] = {}
    for medium, max_m in (("fibre", settings.coverage_location_fibre_m), ("copper", settings.coverage_location_copper_m)):
        boxes = nearest_boxes(session, point, medium=medium, max_m=max_m, local_network_ids={network}, limit=1)
        near[medium] = boxes[0] if boxes else None
    technologies = []
    for technology in TECHNOLOGIES:
        box = near["fibre" if technology == Technology.FTTH else "copper"] if technology != Technology.LAN else None
        where = (f"; the nearest {'fibre' if technology == Technology.FTTH else 'copper'} box is {box.name} "
                 f"at {box.distance_m:.0f} m") if box is not None and box.distance_m is not None else ""
        technologies.append({
            "technology": technology.value, "available": False, "free_capacity": 0,
            "serving_box": ({"id": box.box_id, "name": box.name, "distance_m": box.distance_m, "via": box.via}
                            if box is not None else None),
            "max_down_mbps": None,
            "reason": f"no standard address within reach of this point: register the address first{where}",
            "reason_zh": "此位置附近無標準地址，請先登記地址" + (f"；最近的分線盒/光分纖箱為 {box.name}" if box else ""),
            "reasons": ["no_address"], "alternatives": [],
        })
    products = [_entry(p, UNQUALIFIED, "no standard address within reach of this point",
                       "此位置附近無標準地址", [], ["no_address"]) for p in wanted]
    return {"address": None, "location": {"lon": point[0], "lat": point[1]}, "technologies": technologies,
            "products": products}
