"""From the products of an order to what must be held: the line technology, whether a number is
needed and from which switch's pools, and what rides on a bearer.

- `ftth_broadband` FTTH, `adsl_broadband` ADSL, `vdsl_broadband` VDSL, `lan_broadband` LAN,
  `pots` POTS (copper to a switch line port, and a number of the exchange owning that port).
- `ngn_phone`: with FTTH (in the order, or the customer's live FTTH service at the address) it
  rides on the fibre with a number of the NGN softswitch; otherwise copper through an access
  gateway line port (designed as POTS) with a number of that gateway's pools.
- `iptv`, `voip`: ride on a broadband service: the order's own, or the customer's live one at
  the address (its bearer); none is `409 no_capacity` saying so.
"""
from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.customers.models import Service
from resource_mgr.errors import Invalid, NoCapacity
from resource_mgr.inventory.models import Device
from resource_mgr.numbers.models import NumberPool
from resource_mgr.states import Product, ServiceState, Technology

BROADBAND = {
    Product.FTTH_BROADBAND: Technology.FTTH, Product.ADSL_BROADBAND: Technology.ADSL,
    Product.VDSL_BROADBAND: Technology.VDSL, Product.LAN_BROADBAND: Technology.LAN,
}
RIDERS = {Product.IPTV, Product.VOIP}
PHONES = {Product.POTS, Product.NGN_PHONE}


@dataclass(frozen=True)
class Plan:
    line_product: str | None  # the product whose service occupies the path (None: riders only)
    technology: Technology | None  # the path to design (None: nothing to design)
    needs_number: bool
    ngn_over_fibre: bool  # the number comes from the NGN softswitch, not the line port's switch
    riders: tuple[str, ...]  # products that become services riding on the line (or the bearer)
    number_product: str | None = None  # the product whose service carries the number


def parse_products(products: list[str] | None) -> list[Product]:
    if not products:
        raise Invalid("products must name at least one product", field="products")
    out: list[Product] = []
    for p in products:
        try:
            product = Product(p)
        except ValueError:
            raise Invalid(f"unknown product {p!r}; known: {', '.join(x.value for x in Product)}",
                          field="products") from None
        if product in out:
            raise Invalid(f"product {p} is named twice", field="products")
        out.append(product)
    return out


def plan(products: list[Product], technology: str | None, *, bearer: Service | None = None) -> Plan:
    """`bearer`: the customer's live broadband service at the address, when there is one."""
    broadband = [p for p in products if p in BROADBAND]
    if len(broadband) > 1:
        raise Invalid("an order carries at most one broadband product", field="products")
    if Product.POTS in products and Product.NGN_PHONE in products:
        raise Invalid("pots and ngn_phone are two phone lines: order them apart", field="products")
    wanted = Technology(technology) if technology else None
    riders = [p for p in products if p in RIDERS]
    if broadband:
        tech = BROADBAND[broadband[0]]
        if wanted and wanted != tech:
            raise Invalid(f"technology {wanted.value} does not fit product {broadband[0].value}", field="technology")
        phone = next((p for p in products if p in PHONES), None)
        if phone == Product.POTS and tech not in (Technology.ADSL, Technology.VDSL):
            raise Invalid(f"pots runs on copper: it cannot share a {tech.value} line", field="products")
        if phone == Product.NGN_PHONE and tech != Technology.FTTH:
            raise Invalid("ngn_phone rides on FTTH, or has a copper line of its own", field="products")
        if phone is not None:  # the phone shares the line: its service rides on the broadband one
            riders.insert(0, phone)
        return Plan(broadband[0].value, tech, phone is not None, phone == Product.NGN_PHONE,
                    tuple(r.value for r in riders), phone.value if phone else None)
    if Product.POTS in products:
        if wanted and wanted != Technology.POTS:
            raise Invalid("pots is a copper line to a switch: technology POTS", field="technology")
        return Plan(Product.POTS.value, Technology.POTS, True, False, tuple(r.value for r in riders),
                    Product.POTS.value)
    if Product.NGN_PHONE in products:
        if wanted == Technology.FTTH or (wanted is None and bearer is not None and bearer.technology == Technology.FTTH):
            if bearer is None or bearer.technology != Technology.FTTH:
                raise NoCapacity("ngn_phone over fibre rides on a live FTTH service at this address, and there is "
                                 "none", field="products", reasons=["no_bearer"],
                                 alternatives=[{"kind": "technology", "technology": "POTS"}])
            riders.insert(0, Product.NGN_PHONE)
            return Plan(None, None, True, True, tuple(r.value for r in riders), Product.NGN_PHONE.value)
        if wanted not in (None, Technology.POTS):
            raise Invalid("ngn_phone runs over FTTH or over copper (POTS)", field="technology")
        return Plan(Product.NGN_PHONE.value, Technology.POTS, True, False, tuple(r.value for r in riders),
                    Product.NGN_PHONE.value)
    # IPTV / VoIP only: they ride on what the customer has
    if bearer is None:
        raise NoCapacity(f"{' and '.join(r.value for r in riders)} ride on a broadband service, and there is no "
                         "live broadband service at this address: order broadband with it",
                         field="products", reasons=["no_bearer"],
                         reason_zh="該地址沒有在用的寬帶業務，IPTV/VoIP 無法承載",
                         alternatives=[{"kind": "product", "product": Product.FTTH_BROADBAND.value}])
    return Plan(None, None, False, False, tuple(r.value for r in riders))


def live_bearer(session: Session, *, address_id: str, local_network_id: str) -> Service | None:
    """The customer's live broadband service at the address (the newest), if any."""
    return session.scalar(
        select(Service).where(Service.address_id == address_id, Service.local_network_id == local_network_id,
                              Service.state == ServiceState.ACTIVE, Service.bearer_id.is_(None),
                              Service.product.in_([p.value for p in BROADBAND]))
        .order_by(Service.created_at.desc(), Service.id.desc()).limit(1))


def pools_for_switch(session: Session, switch_id: str) -> list[NumberPool]:
    from resource_mgr.numbers.search import pools_for_switch as pools

    return pools(session, switch_id)


def ngn_pools(session: Session, local_network_id: str) -> list[NumberPool]:
    """The pools of the local network's NGN softswitches."""
    return list(session.scalars(
        select(NumberPool).join(Device, Device.id == NumberPool.switch_id)
        .where(NumberPool.local_network_id == local_network_id, Device.device_type == "ngn_softswitch")
        .order_by(NumberPool.name)))


def exchange_of_pool(session: Session, pool_id: str) -> str | None:
    return session.scalar(select(NumberPool.switch_id).where(NumberPool.id == pool_id))
