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


# Sample values to try a pattern with: whole numbers for positions, text for names.
_INT_FIELDS = {"seq", "slot", "port"}


def check_pattern(kind: str, pattern: str) -> str:
    """Refuse a pattern that names unknown fields, uses positional `{}`, reaches into a field
    (`{site.__class__}`, `{site[0]}`: format-string injection), or cannot be rendered with the
    kind's fields (a bad format spec such as `{seq:zz}` or `{site:02d}`)."""
    if kind not in FIELDS:
        raise Invalid(f"no naming rule kind {kind!r}; known: {', '.join(sorted(FIELDS))}", field="kind")
    allowed = f"{{{'}, {'.join(sorted(FIELDS[kind]))}}}"
    if not isinstance(pattern, str) or not pattern.strip():
        raise Invalid(f"naming pattern for {kind} must not be empty; it may use {allowed}", field="pattern")
    try:
        names = {f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None}
    except ValueError as exc:
        raise Invalid(f"naming pattern {pattern!r} is malformed: {exc}", field="pattern") from None
    if any(not n or n.isdigit() for n in names):
        raise Invalid(f"naming pattern {pattern!r} must name its fields, e.g. {allowed}", field="pattern")
    if any("." in n or "[" in n for n in names):
        raise Invalid(f"naming pattern {pattern!r} may not reach into a field with . or [ ]", field="pattern")
    unknown = names - FIELDS[kind]
    if unknown or not names:
        raise Invalid(f"naming pattern {pattern!r} for {kind} may use only "
                      f"{allowed}; unknown: {', '.join(sorted(unknown)) or 'none used'}",
                      field="pattern")
    sample = {f: (1 if f in _INT_FIELDS else "X") for f in FIELDS[kind]}
    try:
        pattern.format(**sample)
    except (KeyError, ValueError, IndexError, TypeError, AttributeError) as exc:
        raise Invalid(f"naming pattern {pattern!r} is malformed: {exc}", field="pattern") from None
    return pattern


def render(pattern: str, **fields: Any) -> str:
    try:
        return pattern.format(**fields)
    except (KeyError, ValueError, IndexError, TypeError, AttributeError) as exc:
        raise Invalid(f"cannot name with {pattern!r}: {exc}", field="pattern") from None
