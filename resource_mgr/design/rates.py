"""Copper loop length → DSL downstream rate, from the interpolated tables of the settings."""
from __future__ import annotations

from collections.abc import Iterable

from resource_mgr.config import Settings

REFERENCE_GAUGE = "0.4"


def rate_table(technology: str, settings: Settings) -> list[tuple[float, float]]:
    tech = str(technology).upper()
    if tech == "ADSL":
        return sorted(settings.design_adsl_rate_table)
    if tech == "VDSL":
        return sorted(settings.design_vdsl_rate_table)
    raise ValueError(f"no rate table for {technology}")


def rate_for_loop(loop_m: float, technology: str, settings: Settings) -> float:
    """Downstream Mbit/s a loop of `loop_m` (0.4 mm equivalent metres) gets: the first point's
    rate for shorter loops, linear between points, 0.0 past the last point (no service)."""
    table = rate_table(technology, settings)
    if not table:
        return 0.0
    if loop_m <= table[0][0]:
        return float(table[0][1])
    for (m0, r0), (m1, r1) in zip(table, table[1:]):
        if loop_m <= m1:
            return float(r0 + (r1 - r0) * (loop_m - m0) / (m1 - m0)) if m1 > m0 else float(r1)
    return 0.0


def max_loop_for_rate(rate_mbps: float, technology: str, settings: Settings) -> float:
    """The longest loop that still gets `rate_mbps` (0.0 if none does)."""
    table = rate_table(technology, settings)
    if not table or rate_mbps > table[0][1]:
        return 0.0
    best = table[0][0]
    for (m0, r0), (m1, r1) in zip(table, table[1:]):
        if r1 >= rate_mbps:
            best = m1
        elif r0 >= rate_mbps > r1:
            return m0 + (m1 - m0) * (r0 - rate_mbps) / (r0 - r1)
    return best


def equivalent_loop_m(segments: Iterable[tuple[float, float | None]], settings: Settings) -> float:
    """Loop length in 0.4 mm metres: each (length, gauge) segment weighed by its loop resistance
    against 0.4 mm; an unknown gauge counts as 0.4 mm (the worst usual case)."""
    ohms = settings.design_loop_ohm_per_km
    ref = ohms.get(REFERENCE_GAUGE) or 148.0
    total = 0.0
    for length, gauge in segments:
        key = f"{gauge:.1f}" if gauge else REFERENCE_GAUGE
        total += length * ohms.get(key, ref) / ref
    return total
