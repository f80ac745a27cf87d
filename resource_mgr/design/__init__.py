"""Path design: the one implementation orders (reservations) and coverage (qualification) use,
so the sales counter and the order never disagree.

- `design_path(session, *, address_id, technology, settings, now, min_down_mbps=None, avoid=(),
  keep=(), lock=False, reservation_id=None) -> Design` or `NoDesign` (a NoCapacity with
  `reasons`, `reason_zh` and `alternatives`).
- `qualify(...) -> TechnologyAnswer`: available ⇔ design_path succeeds (the same search);
  `qualify_all(session, *, address_id, technologies, settings, now, min_down_mbps=None)` the same
  for several technologies, sharing the reads (a coverage check).
- `rate_for_loop`, `optical_loss`: the copper rate table and the optical budget.

How a path is found (settings: the `design_*` block of resource_mgr.config, docs/operations.md):

- **Serving boxes** come from resource_mgr.addresses.serving_boxes (coverage inherited down the
  address tree, else boxes near the address). FTTH uses fibre boxes, ADSL / VDSL / POTS copper.
- **Walk** (walk.py): every port of those boxes is followed towards the head along its
  connections (never back), and from a splitter output through the splitter to its input. The
  topology and the units' state come from a per-process cache following the change feed
  (trace.py; docs/operations.md, "Design and coverage speed"), the misses of a design from one
  query. A unit that is locked, faulty or reserved, held by another order (an expired
  pre-occupation counts as free), whose resource is not in service, or a shared unit without
  room (`used + live holds of others < capacity`; a PON port also `< design_max_onts_per_pon`)
  ends its chain, and says why (errors.py).
- **FTTH** (fibre.py): chains that reach a PON port; the loss of each (splitters by ratio, fibre
  km of its cores and the drop, each connection by its kind, end connectors, margin) must close
  the budget of the OLT's optics class: `design_optic_class_by_model[Device.model]`, else
  `design_optic_class_by_technology[Device.technology]`, else `design_optic_class_default`.
- **Copper** (copper.py): a chain ending at a cross box distribution terminal with no jumper is
  paired with a free, unjumpered feeder terminal of the same cross box; one ending at an MDF
  line terminal with no jumper (or jumpered to another technology's port) with a free,
  unjumpered equipment terminal wired to a free head port of the technology at the MDF's site
  (`design_head_technologies`); each pairing is a `make_jumper` work item. The loop (pair
  cables' lengths plus the drop, weighed by gauge) gives the DSL rate (rates.py; zero past the
  table: no service) or must be within `design_pots_max_loop_m` for POTS. POTS says its switch
  (`line_port_switch_id`).
- **LAN** (lan.py): a free eth_port of a LAN switch within `design_lan_switch_max_m` of the
  building address's point (the top of the address tree), nearest switch first: the generator
  and practice put the building's switch there, with no site.
- **Choice** (policy.py): kept units (redesign), then fewer jumpers to make
  (`design_prefer_wired`), the nearer serving box, then `design_policy` on how full the head and
  the shared units behind it are (`fill`: fullest first; `spread`: emptiest), then the lowest
  port. `free_capacity` counts the paths found that can be taken together (each exclusive unit
  once, each shared unit up to its room)."""
from resource_mgr.design.budget import optical_loss
from resource_mgr.design.errors import NoDesign
from resource_mgr.design.model import Design, Hop, TechnologyAnswer, Work
from resource_mgr.design.rates import rate_for_loop
from resource_mgr.design.services import design_path, qualify, qualify_all

__all__ = ["Design", "Hop", "NoDesign", "TechnologyAnswer", "Work", "design_path", "optical_loss", "qualify",
           "qualify_all", "rate_for_loop"]
