"""What a design is: ordered hops (customer side first, head port last) and the work to do."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Hop:
    unit_id: str
    kind: str
    name: str
    device: str  # the name of the unit's root resource (device, box, frame, cable)
    site: str | None
    cable: str | None  # the cable's name for pairs and cores
    shared: bool

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Work:
    action: str  # "make_jumper", "install_ont"
    a_unit_id: str | None
    z_unit_id: str | None
    container_id: str | None
    detail: str

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class Design:
    technology: str
    address_id: str
    box_id: str | None
    hops: list[Hop]
    work: list[Work] = field(default_factory=list)
    loop_m: float | None = None
    loss_db: float | None = None
    optic_class: str | None = None
    budget_db: float | None = None
    max_down_mbps: float | None = None
    line_port_switch_id: str | None = None
    # the switch's device type and technology (coverage: is it an NGN access gateway); not in as_json
    line_port_switch_type: str | None = None
    line_port_switch_technology: str | None = None

    @property
    def unit_ids(self) -> list[str]:
        return [h.unit_id for h in self.hops]

    def as_json(self) -> dict[str, Any]:
        return {"technology": self.technology, "hops": [h.as_json() for h in self.hops],
                "work": [w.as_json() for w in self.work], "loop_m": self.loop_m, "loss_db": self.loss_db,
                "optic_class": self.optic_class, "budget_db": self.budget_db,
                "max_down_mbps": self.max_down_mbps}


@dataclass
class TechnologyAnswer:
    technology: str
    available: bool
    free_capacity: int
    serving_box: dict[str, Any] | None
    max_down_mbps: float | None
    reason: str
    reason_zh: str
    reasons: list[str]
    design: Design | None
    alternatives: list[dict[str, Any]]
