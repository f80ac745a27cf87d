"""The optical budget of a would-be FTTH path: its loss against the OLT optics' class."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from resource_mgr.config import Settings


@dataclass(frozen=True)
class Budget:
    loss_db: float  # with the margin
    optic_class: str
    budget_db: float

    @property
    def closes(self) -> bool:
        return self.loss_db <= self.budget_db


def splitter_loss(ratio: int, settings: Settings) -> float:
    table = settings.design_splitter_loss_db
    if str(ratio) in table:
        return float(table[str(ratio)])
    # an unlisted ratio: the next larger listed one (never optimistic)
    larger = sorted((int(r), v) for r, v in table.items() if int(r) >= ratio)
    if larger:
        return float(larger[0][1])
    raise ValueError(f"no splitter loss for ratio 1:{ratio} in design_splitter_loss_db")


def optical_loss(*, splitter_ratios: Iterable[int], fibre_m: float, connections: Iterable[str],
                 settings: Settings, margin: bool = True) -> float:
    """Loss in dB: splitters by ratio + fibre km × dB/km + each connection by its kind + the end
    connectors + (with `margin`) the safety margin."""
    loss = sum(splitter_loss(r, settings) for r in splitter_ratios)
    loss += fibre_m / 1000.0 * settings.design_fibre_db_per_km
    per_kind = settings.design_connection_loss_db
    loss += sum(per_kind.get(kind, settings.design_connector_db) for kind in connections)
    loss += settings.design_end_connectors * settings.design_connector_db
    if margin:
        loss += settings.design_margin_db
    return round(loss, 2)


def optic_class(*, model: str | None, technology: str | None, settings: Settings) -> str:
    """The OLT optics' class: by model, else by technology, else the default."""
    if model and model in settings.design_optic_class_by_model:
        return settings.design_optic_class_by_model[model]
    if technology and technology in settings.design_optic_class_by_technology:
        return settings.design_optic_class_by_technology[technology]
    return settings.design_optic_class_default


def budget_for(loss_db: float, cls: str, settings: Settings) -> Budget:
    budget = settings.design_optic_classes.get(cls)
    if budget is None:
        raise ValueError(f"optic class {cls!r} is not in design_optic_classes")
    return Budget(loss_db=loss_db, optic_class=cls, budget_db=float(budget))
