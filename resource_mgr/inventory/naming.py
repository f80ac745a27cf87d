"""資源命名管理: naming rules are data per local network; these are the defaults a new local
network starts with. A pattern is a Python format string over the fields listed for its kind."""
from __future__ import annotations

import string
from typing import Any

from resource_mgr.errors import Invalid

DEFAULT_RULES: dict[str, str] = {
    "device": "{site}-{type}{seq:02d}",
    "card": "{slot:02d}",
    "port": "{slot}/{port}",
    "device_port": "{label}{port}",
    "cross_box": "{site}-JJX{seq:03d}",
    "distribution_box": "{site}-FXH{seq:04d}",
    "fibre_access_terminal": "{site}-GFX{seq:04d}",
    "frame": "{site}-{type}{seq:02d}",
    "terminal": "{side}-{port:04d}",
    "pair": "{seq:04d}",
    "core": "{seq:03d}",
    "box_port": "{port:02d}",
}

FIELDS: dict[str, set[str]] = {
    "device": {"site", "type", "seq", "local_network", "template"},
    "card": {"device", "slot", "card_type"},
    "port": {"device", "slot", "port", "card_type"},
    "device_port": {"device", "port", "label"},
    "cross_box": {"site", "seq", "local_network", "template"},
    "distribution_box": {"site", "seq", "local_network", "template"},
    "fibre_access_terminal": {"site", "seq", "local_network", "template"},
    "frame": {"site", "type", "seq", "local_network"},
    "terminal": {"box", "side", "port"},
    "pair": {"cable", "seq"},
    "core": {"cable", "seq"},
    "box_port": {"box", "port"},
}


# Short labels for ports on a device itself (splitter IN1 / OUT1 .. OUT8, switch GE1 ..).
PORT_LABELS = {"splitter_in": "IN", "splitter_out": "OUT", "eth_port": "GE", "ont_port": "LAN",
               "pon_port": "PON", "dsl_port": "DSL", "line_port": "L", "terminal": "T", "box_port": "P"}


def check_pattern(kind: str, pattern: str) -> str:
    if kind not in FIELDS:
        raise Invalid(f"no naming rule kind {kind!r}; known: {', '.join(sorted(FIELDS))}", field="kind")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:
        raise Invalid(f"naming pattern {pattern!r} is malformed: {exc}", field="pattern") from None
    unknown = {n.split(".")[0].split("[")[0] for n in names} - FIELDS[kind]
    if unknown or not names:
        raise Invalid(f"naming pattern {pattern!r} for {kind} may use only "
                      f"{{{'}, {'.join(sorted(FIELDS[kind]))}}}; unknown: {', '.join(sorted(unknown)) or 'none used'}",
                      field="pattern")
    return pattern


def render(pattern: str, **fields: Any) -> str:
    try:
        return pattern.format(**fields)
    except (KeyError, ValueError, IndexError) as exc:
        raise Invalid(f"cannot name with {pattern!r}: {exc}", field="pattern") from None
