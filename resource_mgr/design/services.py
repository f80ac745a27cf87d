"""design_path and qualify: the one path design that orders and coverage both use."""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from resource_mgr.clock import aware
from resource_mgr.config import Settings
from resource_mgr.design import copper, fibre, lan
from resource_mgr.design.errors import NoDesign, sentence
from resource_mgr.design.model import Design, Hop, TechnologyAnswer
from resource_mgr.design.policy import Candidate, count_fitting, sort_key
from resource_mgr.design.rates import rate_for_loop
from resource_mgr.design.trace import Tracer
from resource_mgr.inventory.models import Resource
from resource_mgr.occupancy import ledger
from resource_mgr.occupancy.models import SharedHold, Unit
from resource_mgr.states import AdminState, Occupancy, Technology

from resource_mgr.addresses import ancestors, serving_boxes
from resource_mgr.addresses.serving import drop_limit_m

MEDIUM = {"FTTH": "fibre", "ADSL": "copper", "VDSL": "copper", "POTS": "copper"}
LOCK_ATTEMPTS = 3


class _Search:
    """The candidates for one address and technology, best first, and why others failed."""

    def __init__(self, session: Session, *, address_id: str, technology: str, settings: Settings, now: datetime,
                 min_down_mbps: float | None, avoid: frozenset[str], keep: Sequence[str],
                 reservation_id: str | None, shared: dict[str, Any] | None = None) -> None:
        self.tech = Technology(technology).value
        self.address_id = address_id
        self.settings, self.now, self.min_down_mbps = settings, now, min_down_mbps
        # several technologies for one address (qualify_all) share the reads and the boxes
        shared = {} if shared is None else shared
        if "tracer" not in shared:
            shared["tracer"] = Tracer(session, now=now, settings=settings, avoid=avoid,
                                      reservation_id=reservation_id)
        self.tr = shared["tracer"]
        self.boxes: list[Any] = []
        self.reasons: list[str] = []
        self.facts: dict[str, Any] = {}
        cands: list[Candidate] = []
        medium = MEDIUM.get(self.tech)
        if medium is None:
            if "ancestors" not in shared:  # NotFound for an unknown address
                shared["ancestors"] = self.tr.remember(("ancestors", address_id),
                                                       lambda: ancestors(session, address_id))
            chain = shared["ancestors"]
            cands, self.reasons = lan.candidates(self.tr, chain, settings, settings.design_free_capacity_cap)
        else:
            if medium not in shared:
                shared[medium] = self._serving(session, shared, medium)
            self.boxes = shared[medium]
            if not self.boxes:
                self.reasons = ["no_serving_box"]
            elif self.tech == "FTTH":
                cands, self.reasons, self.facts = fibre.candidates(self.tr, self.boxes, settings)
            else:
                cands, self.reasons, self.facts = copper.candidates(self.tr, self.tech, self.boxes, settings,
                                                                    min_down_mbps)
        if min_down_mbps is not None and self.tech in ("FTTH", "LAN") and cands:
            rate = (lambda c: fibre.head_rate(c.units[-1], settings)) if self.tech == "FTTH" \
                else (lambda c: settings.design_lan_rate_mbps)
            slow = [c for c in cands if (rate(c) or 0.0) < min_down_mbps]
            if slow:
                self.reasons += ["rate_too_low"] * len(slow)
                self.facts.setdefault("max_down_mbps", max(rate(c) or 0.0 for c in slow))
                cands = [c for c in cands if c not in slow]
        keep_set = frozenset(keep)
        self.candidates = sorted(cands, key=lambda c: sort_key(c, self.tr, settings, keep_set))

    def _serving(self, session: Session, shared: dict[str, Any], medium: str) -> list[Any]:
        """The serving boxes of the medium, kept with the topology per address (and the limits
        that decide them)."""
        settings, address_id = self.settings, self.address_id
        if "ancestors" not in shared:
            shared["ancestors"] = self.tr.remember(("ancestors", address_id), lambda: ancestors(session, address_id))
        chain = shared["ancestors"]
        key = ("serving", address_id, medium, settings.design_max_boxes, drop_limit_m(medium, settings))
        return self.tr.remember(key, lambda: serving_boxes(session, address_id, medium=medium, settings=settings,
                                                           limit=settings.design_max_boxes, chain=chain))

    def box_json(self, box_id: str | None) -> dict[str, Any] | None:
        box = next((b for b in self.boxes if b.box_id == box_id), None) or (self.boxes[0] if self.boxes else None)
        if box is None:
            return None
        return {"id": box.box_id, "name": box.name, "distance_m": box.distance_m, "via": box.via}

    def no_design(self) -> NoDesign:
        counted = Counter(self.reasons)
        reasons = sorted(counted, key=lambda r: -counted[r]) or ["no_serving_box"]
        alternatives: list[dict[str, Any]] = []
        loop = self.facts.get("loop_m")
        if "loop_too_long" in reasons and loop is not None:
            rate = self.facts.get("max_down_mbps")
            if self.tech in ("ADSL", "VDSL") and rate:
                alternatives.append({"kind": "rate", "technology": self.tech, "max_down_mbps": rate,
                                     "loop_m": loop})
            if self.tech == "VDSL":
                adsl = rate_for_loop(loop, "ADSL", self.settings)
                if adsl > 0 and (self.min_down_mbps is None or adsl >= self.min_down_mbps):
                    alternatives.append({"kind": "technology", "technology": "ADSL",
                                         "max_down_mbps": round(adsl, 1), "loop_m": loop})
        if "rate_too_low" in reasons and self.facts.get("max_down_mbps"):
            alternatives.append({"kind": "rate", "technology": self.tech,
                                 "max_down_mbps": self.facts["max_down_mbps"]})
        return NoDesign(self.tech, reasons, alternatives=alternatives,
                        box_id=self.boxes[0].box_id if self.boxes else None,
                        medium=MEDIUM.get(self.tech, ""), tech=self.tech)

    def design(self, c: Candidate) -> Design:
        tr = self.tr
        names = tr.topo.site_names
        missing = sorted({u.site_id for u in c.units if u.site_id and u.site_id not in names})
        if missing:
            tr.queries += 1
            names.update(tr.session.execute(select(Resource.id, Resource.name).where(Resource.id.in_(missing))).all())
        hops = [Hop(unit_id=u.id, kind=u.kind, name=u.name, device=u.root_name, site=names.get(u.site_id),
                    cable=u.root_name if u.kind in ("pair", "core") else None, shared=u.shared) for u in c.units]
        head = c.units[-1]
        d = Design(technology=self.tech, address_id=self.address_id, box_id=c.box_id, hops=hops, work=list(c.work))
        if self.tech == "FTTH":
            d.loss_db, d.optic_class, d.budget_db = (c.facts["loss_db"], c.facts["optic_class"],
                                                     c.facts["budget_db"])
            d.max_down_mbps = fibre.head_rate(head, self.settings)
        elif self.tech == "LAN":
            d.max_down_mbps = self.settings.design_lan_rate_mbps
        else:
            d.loop_m = c.facts.get("loop_m")
            d.max_down_mbps = c.facts.get("max_down_mbps")
            if self.tech == "POTS":
                d.line_port_switch_id = head.root_id
                d.line_port_switch_type, d.line_port_switch_technology = head.device_type, head.dev_technology
        return d


def _still_free(u: Unit, now: datetime, reservation_id: str | None, settings: Settings) -> bool:
    """The re-check of a locked, reloaded unit (as the ledger will judge it, plus the ONT cap)."""
    if u.admin_state != AdminState.IN_SERVICE:
        return False
    if u.shared:
        holds = u.active_holds(now)
        if reservation_id and any(h.holder == reservation_id for h in holds):
            return True
        cap = min(u.capacity, settings.design_max_onts_per_pon) if u.kind == "pon_port" else u.capacity
        return u.used + len(holds) < cap
    if u.occupancy == Occupancy.PREOCCUPIED and reservation_id and u.reservation_id == reservation_id:
        return True
    return u.occupancy == Occupancy.FREE or (
        u.occupancy == Occupancy.PREOCCUPIED and aware(u.preoccupied_until) <= now)


def _load_holds(session: Session, units: list[Unit]) -> None:
    """The holds of the shared units just locked, in one query (the re-check and the ledger's
    pre-occupation read them; lazily that is a query and an autoflush per unit)."""
    shared = [u for u in units if u.shared and "holds" not in u.__dict__]
    if not shared:
        return
    found: dict[str, list[SharedHold]] = {u.id: [] for u in shared}
    for hold in session.scalars(select(SharedHold).where(SharedHold.unit_id.in_(list(found)))):
        found[hold.unit_id].append(hold)
    for u in shared:
        set_committed_value(u, "holds", found[u.id])


def design_path(session: Session, *, address_id: str, technology: Technology | str, settings: Settings,
                now: datetime, min_down_mbps: float | None = None, avoid: frozenset[str] = frozenset(),
                keep: Sequence[str] = (), lock: bool = False, reservation_id: str | None = None) -> Design:
    """The best complete path now, or NoDesign saying why (see the package docstring).
    `reservation_id`: units that reservation holds count as free (a redesign or a retry)."""
    avoid = frozenset(avoid)
    for _attempt in range(LOCK_ATTEMPTS):
        search = _Search(session, address_id=address_id, technology=technology, settings=settings, now=now,
                         min_down_mbps=min_down_mbps, avoid=avoid, keep=keep, reservation_id=reservation_id)
        if not search.candidates:
            raise search.no_design()
        best = search.candidates[0]
        if not lock:
            return search.design(best)
        locked = ledger.lock_units(session, best.ids)
        _load_holds(session, locked)
        taken = {u.id for u in locked if not _still_free(u, now, reservation_id, settings)}
        if not taken:
            return search.design(best)
        avoid = avoid | taken  # changed since we read it: design again around it
    raise search.no_design()


def qualify(session: Session, *, address_id: str, technology: Technology | str, settings: Settings,
            now: datetime, min_down_mbps: float | None = None, _shared: dict[str, Any] | None = None) -> TechnologyAnswer:
    """Can the address get this technology now, how many more, how fast; built on the same
    search as design_path (available ⇔ design_path would succeed)."""
    search = _Search(session, address_id=address_id, technology=technology, settings=settings, now=now,
                     min_down_mbps=min_down_mbps, avoid=frozenset(), keep=(), reservation_id=None, shared=_shared)
    tech = search.tech
    if not search.candidates:
        err = search.no_design()
        return TechnologyAnswer(technology=tech, available=False, free_capacity=0,
                                serving_box=search.box_json(None), max_down_mbps=search.facts.get("max_down_mbps"),
                                reason=err.detail, reason_zh=err.reason_zh, reasons=err.reasons, design=None,
                                alternatives=err.alternatives)
    best = search.candidates[0]
    design = search.design(best)
    free = count_fitting(search.candidates, search.tr, settings.design_free_capacity_cap)
    en, zh = _available_text(tech, design)
    return TechnologyAnswer(technology=tech, available=True, free_capacity=free,
                            serving_box=search.box_json(best.box_id), max_down_mbps=design.max_down_mbps,
                            reason=en, reason_zh=zh, reasons=[], design=design, alternatives=[])


def qualify_all(session: Session, *, address_id: str, technologies: Sequence[Technology | str],
                settings: Settings, now: datetime, min_down_mbps: float | None = None) -> list[TechnologyAnswer]:
    """qualify() for several technologies of one address, sharing the reads (the serving boxes
    of each medium, the topology, the state): what a coverage check asks."""
    shared: dict[str, Any] = {}
    return [qualify(session, address_id=address_id, technology=t, settings=settings, now=now,
                    min_down_mbps=min_down_mbps, _shared=shared) for t in technologies]


def _available_text(tech: str, d: Design) -> tuple[str, str]:
    if tech == "FTTH":
        return (f"FTTH available: optical loss {d.loss_db} dB within the {d.optic_class} budget of {d.budget_db} dB",
                f"可裝FTTH：光損耗{d.loss_db} dB，在{d.optic_class}預算{d.budget_db} dB之內")
    if tech in ("ADSL", "VDSL"):
        return (f"{tech} available: loop {d.loop_m} m gives up to {d.max_down_mbps} Mbit/s",
                f"可裝{tech}：線路長度{d.loop_m}米，最高{d.max_down_mbps} Mbit/s")
    if tech == "POTS":
        return f"POTS available: loop {d.loop_m} m", f"可裝電話：線路長度{d.loop_m}米"
    return "LAN available: a free port on the building's LAN switch", "可裝LAN：樓宇交換機有空閒端口"


__all__ = ["design_path", "qualify", "qualify_all", "sentence"]
