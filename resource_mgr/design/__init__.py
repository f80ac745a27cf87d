"""Path design: the one implementation orders (reservations) and coverage (qualification) use.

- `design_path(session, *, address_id, technology, settings, now, min_down_mbps=None, avoid=(),
  keep=(), lock=False, reservation_id=None) -> Design` or `NoDesign` (a NoCapacity).
- `qualify(...) -> TechnologyAnswer`: available ⇔ design_path succeeds.
- `rate_for_loop`, `optical_loss`: the copper rate table and the optical budget.

How a path is chosen: the serving boxes of the address (coverage inherited down the address
tree, else nearby boxes), every free port of them walked towards the head a level at a time
(one query per level for all ports at once); a unit that is locked, faulty, reserved, held by
another order (an expired pre-occupation counts as free) or whose resource is not in service
ends the chain; a shared unit needs room (`used + live holds < capacity`, a PON port also
`< design_max_onts_per_pon`). Complete paths are checked (optical budget for FTTH, loop
length → rate for DSL, loop limit for POTS) and ordered by policy.py."""
from resource_mgr.design.budget import optical_loss
from resource_mgr.design.errors import NoDesign
from resource_mgr.design.model import Design, Hop, TechnologyAnswer, Work
from resource_mgr.design.rates import rate_for_loop
from resource_mgr.design.services import design_path, qualify

__all__ = ["Design", "Hop", "NoDesign", "TechnologyAnswer", "Work", "design_path", "optical_loss", "qualify",
           "rate_for_loop"]
