"""FTTH: box port → riser core → 2nd-stage splitter → … → 1st-stage splitter → feeder core →
ODF terminal → PON port, with room on every shared unit and a closing optical budget."""
from __future__ import annotations

from typing import Any

from resource_mgr.config import Settings
from resource_mgr.design.budget import budget_for, optic_class, optical_loss
from resource_mgr.design.model import Work
from resource_mgr.design.policy import Candidate
from resource_mgr.design.trace import Tracer, U
from resource_mgr.design.walk import THROUGH, Chain, box_reasons, units_of_owners, walk


def loss_of(c: Candidate, drop_m: float | None, settings: Settings) -> tuple[float, str, float]:
    """(loss with margin, optic class, budget) of a would-be FTTH path."""
    ratios = [u.split_ratio or u.capacity for u in c.units if u.kind == "splitter_in"]
    cables: dict[str, float] = {}
    for u in c.units:
        if u.kind == "core":
            cables[u.root_id] = u.length_m or 0.0
    fibre_m = sum(cables.values()) + (drop_m or 0.0)
    loss = optical_loss(splitter_ratios=ratios, fibre_m=fibre_m,
                        connections=[k for k in c.links if k != THROUGH], settings=settings)
    head = c.units[-1]
    cls = optic_class(model=head.model, technology=head.dev_technology or head.technology, settings=settings)
    b = budget_for(loss, cls, settings)
    return b.loss_db, b.optic_class, b.budget_db


def candidates(tr: Tracer, boxes: list[Any], settings: Settings) -> tuple[list[Candidate], list[str], dict[str, Any]]:
    """Every complete FTTH path through the serving boxes, and the reasons the others fail."""
    rank = {b.box_id: i for i, b in enumerate(boxes)}
    drop = {b.box_id: b.distance_m for b in boxes}
    ports = units_of_owners(tr, list(rank), "box_port")
    reasons: list[str] = []
    facts: dict[str, Any] = {}
    # every port is walked (topology is cached): the state of all of them and of their
    # chains comes in one query, and a port without room ends its chain at once
    walked = walk(tr, [Chain([p]) for p in ports], is_head=lambda u: u.kind == "pon_port", medium="fibre",
                  key="ftth")
    reasons += box_reasons(tr, ports, [p for p in ports if tr.room(p) > 0])
    out: list[Candidate] = []
    best_over: float | None = None
    for chain in walked.done:
        port = chain.units[0]
        c = Candidate(units=chain.units, links=chain.links, work=[], box_id=port.owner_id,
                      box_rank=rank.get(port.owner_id, len(rank)))
        loss, cls, budget = loss_of(c, drop.get(port.owner_id), settings)
        c.facts = {"loss_db": loss, "optic_class": cls, "budget_db": budget}
        if loss > budget:
            reasons.append("budget")
            if best_over is None or loss < best_over:
                best_over = loss
                facts.update(c.facts)
            continue
        c.work = [Work("install_ont", port.id, None, port.owner_id,
                       f"install an ONT at the customer and connect its drop to port {port.name} "
                       f"of {port.root_name}")]
        out.append(c)
    reasons += [r for r, _ in walked.blocked]
    return out, reasons, facts


def head_rate(head: U, settings: Settings) -> float | None:
    tech = head.dev_technology or head.technology
    return settings.design_pon_rate_mbps.get(tech)
