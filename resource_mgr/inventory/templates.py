"""資源模板管理: device models as data, and the defaults every installation starts with."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from resource_mgr.errors import Invalid


class PortGroup(BaseModel):
    model_config = ConfigDict(extra="forbid")
    count: int = Field(gt=0, le=4096)
    port_kind: Literal["pon_port", "dsl_port", "line_port", "eth_port", "ont_port", "splitter_in",
                       "splitter_out", "terminal", "box_port", "uplink_port"]
    capacity: int = Field(default=1, ge=1, le=4096)  # >1 for a shared unit (a PON port: its ONTs)
    technology: str = ""
    side: str = ""  # terminals: feeder / distribution (cross box), line / equipment (MDF)
    first: int = Field(default=1, ge=0)


class CardSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slots: list[Annotated[int, Field(ge=0, le=255)]] = Field(min_length=1)
    card_type: str = Field(min_length=1)
    ports: list[PortGroup] = Field(min_length=1)


class TemplateSpec(BaseModel):
    """What a device made from the template has: cards in slots with their ports, and ports on
    the device itself (a splitter, a box, a frame)."""

    model_config = ConfigDict(extra="forbid")
    cards: list[CardSpec] = []
    ports: list[PortGroup] = []
    split_ratio: int | None = Field(default=None, ge=2, le=128)
    technology: str = ""
    medium: Literal["copper", "fibre", ""] = ""
    frame_type: Literal["mdf", "odf", ""] = ""
    capacity: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _unique_slots(self) -> "TemplateSpec":
        slots = [s for c in self.cards for s in c.slots]
        if len(slots) != len(set(slots)):
            raise ValueError("a slot appears in more than one card spec")
        if not self.cards and not self.ports:
            raise ValueError("a template needs cards or ports")
        return self


RESOURCE_KINDS = ("device", "cross_box", "distribution_box", "frame")


def parse_spec(spec: dict[str, Any]) -> TemplateSpec:
    try:
        return TemplateSpec.model_validate(spec)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        field = f"spec.{where}" if where else "spec"
        raise Invalid(f"template {field}: {err['msg']}", field=field) from None


def _gpon_olt(slots: int, ports: int, tech: str, capacity: int) -> dict[str, Any]:
    # two uplink cards after the service slots: dual homing on different cards
    return {"technology": tech, "cards": [{"slots": list(range(1, slots + 1)), "card_type": f"{tech}-{ports}",
            "ports": [{"count": ports, "port_kind": "pon_port", "capacity": capacity, "technology": tech}]},
            _uplinks([slots + 1, slots + 2], 4)]}


def _splitter(ratio: int) -> dict[str, Any]:
    return {"split_ratio": ratio, "technology": "PON", "ports": [
        {"count": 1, "port_kind": "splitter_in", "capacity": ratio},
        {"count": ratio, "port_kind": "splitter_out"}]}


def _splitter_b(ratio: int) -> dict[str, Any]:
    # PON type-B protection: a 2:N splitter, each input fed from its own PON port
    return {"split_ratio": ratio, "technology": "PON", "ports": [
        {"count": 2, "port_kind": "splitter_in", "capacity": ratio},
        {"count": ratio, "port_kind": "splitter_out"}]}


def _uplinks(slots: list[int], ports: int, rate: str = "10GE") -> dict[str, Any]:
    """Uplink cards (network side): head equipment homes to aggregation nodes through them, and
    aggregation switches, BRAS and core routers are made of them."""
    return {"slots": slots, "card_type": f"UPLINK-{rate}-{ports}",
            "ports": [{"count": ports, "port_kind": "uplink_port", "technology": rate, "side": "network"}]}


def _transport(device_slots: int, ports: int, tech: str, rate: str = "10GE") -> dict[str, Any]:
    return {"technology": tech, "cards": [_uplinks(list(range(1, device_slots + 1)), ports, rate)]}


def _cross_box(pairs: int) -> dict[str, Any]:
    # Feeder side ~ half the distribution side, the usual 1:2 concentration towards the exchange.
    return {"capacity": pairs, "medium": "copper", "ports": [
        {"count": pairs // 2, "port_kind": "terminal", "side": "feeder"},
        {"count": pairs, "port_kind": "terminal", "side": "distribution"}]}


def _box(medium: str, ports: int) -> dict[str, Any]:
    return {"capacity": ports, "medium": medium, "ports": [{"count": ports, "port_kind": "box_port"}]}


# (name, resource kind, device type, spec)
DEFAULT_TEMPLATES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("OLT-GPON-17x16", "device", "olt", _gpon_olt(17, 16, "GPON", 64)),
    ("OLT-XGSPON-17x8", "device", "olt", _gpon_olt(17, 8, "XGS-PON", 128)),
    *[(f"SPLITTER-1:{r}", "device", "splitter", _splitter(r)) for r in (2, 4, 8, 16, 32, 64)],
    *[(f"SPLITTER-2:{r}", "device", "splitter", _splitter_b(r)) for r in (4, 8)],
    ("DSLAM-ADSL-16x64", "device", "dslam", {"technology": "ADSL2+", "cards": [
        {"slots": list(range(1, 17)), "card_type": "ADSL2+-64",
         "ports": [{"count": 64, "port_kind": "dsl_port", "technology": "ADSL2+"}]}, _uplinks([17, 18], 2, "GE")]}),
    ("DSLAM-VDSL-8x48", "device", "dslam", {"technology": "VDSL2", "cards": [
        {"slots": list(range(1, 9)), "card_type": "VDSL2-48",
         "ports": [{"count": 48, "port_kind": "dsl_port", "technology": "VDSL2"}]}, _uplinks([9, 10], 2, "GE")]}),
    ("PSTN-SWITCH-20x128", "device", "pstn_switch", {"technology": "PSTN", "cards": [
        {"slots": list(range(1, 21)), "card_type": "ASL-128",
         "ports": [{"count": 128, "port_kind": "line_port", "technology": "PSTN"}]}]}),
    ("NGN-SOFTSWITCH", "device", "ngn_softswitch", {"technology": "NGN", "ports": [
        {"count": 4, "port_kind": "eth_port"}]}),
    ("AG-16x64", "device", "access_gateway", {"technology": "NGN", "cards": [
        {"slots": list(range(1, 17)), "card_type": "AG-POTS-64",
         "ports": [{"count": 64, "port_kind": "line_port", "technology": "NGN"}]}, _uplinks([17, 18], 2, "GE")]}),
    ("LAN-SWITCH-48", "device", "lan_switch", {"technology": "LAN", "cards": [_uplinks([1], 4)], "ports": [
        {"count": 48, "port_kind": "eth_port", "technology": "LAN"}]}),
    ("AGG-SWITCH-8x24", "device", "aggregation_switch", _transport(8, 24, "ETH")),
    ("BRAS-4x8", "device", "bras", _transport(4, 8, "BNG")),
    ("CORE-ROUTER-8x16", "device", "core_router", _transport(8, 16, "IP", "100GE")),
    ("ONT-1GE-1POTS", "device", "ont", {"technology": "GPON", "ports": [
        {"count": 1, "port_kind": "ont_port", "technology": "GPON"}]}),
    *[(f"CROSS-BOX-{p}", "cross_box", "", _cross_box(p)) for p in (300, 600, 1200)],
    *[(f"DIST-BOX-{p}", "distribution_box", "", _box("copper", p)) for p in (10, 20, 30)],
    *[(f"FAT-{p}", "distribution_box", "", _box("fibre", p)) for p in (8, 16, 24)],
    ("MDF-2000", "frame", "", {"frame_type": "mdf", "medium": "copper", "ports": [
        {"count": 2000, "port_kind": "terminal", "side": "line"},
        {"count": 2000, "port_kind": "terminal", "side": "equipment"}]}),
    ("ODF-576", "frame", "", {"frame_type": "odf", "medium": "fibre", "ports": [
        {"count": 576, "port_kind": "terminal", "side": "line"}]}),
]
