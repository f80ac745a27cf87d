"""Naming rules and template specs, without a database."""
from __future__ import annotations

import pytest

from resource_mgr.errors import Invalid
from resource_mgr.inventory import naming
from resource_mgr.inventory.templates import DEFAULT_TEMPLATES, TemplateSpec, parse_spec


@pytest.mark.parametrize("kind", sorted(naming.DEFAULT_RULES))
def test_default_rules_are_valid(kind):
    assert naming.check_pattern(kind, naming.DEFAULT_RULES[kind]) == naming.DEFAULT_RULES[kind]


def test_render():
    assert naming.render(naming.DEFAULT_RULES["device"], site="GZ-TH", type="OLT", seq=3) == "GZ-TH-OLT03"
    assert naming.render(naming.DEFAULT_RULES["port"], slot=2, port=15) == "2/15"
    assert naming.render(naming.DEFAULT_RULES["pair"], seq=7) == "0007"
    assert naming.render(naming.DEFAULT_RULES["terminal"], side="feeder", port=12) == "feeder-0012"
    assert naming.render("{device}-{slot:02d}-{port:02d}", device="OLT1", slot=1, port=5, extra="ignored") == "OLT1-01-05"


@pytest.mark.parametrize("pattern", ["{seq:03d}", "{slot}-{port}", "{seq:d}"])
def test_render_with_missing_or_wrong_fields_is_refused(pattern):
    with pytest.raises(Invalid) as info:
        naming.render(pattern, seq="x")
    assert info.value.field == "pattern"
    assert pattern in info.value.detail


def test_custom_pattern_is_accepted():
    assert naming.check_pattern("port", "{device}-{slot:02d}-{port:02d}")
    assert naming.check_pattern("device", "{local_network}/{site}/{type}-{seq:03d}")


@pytest.mark.parametrize("kind, pattern, why", [
    ("device", "{site}-{colour}{seq}", "colour"),  # unknown field
    ("pair", "{port:04d}", "port"),  # a field of another kind
    ("device", "{site", "malformed"),
    ("device", "site}", "malformed"),
    ("device", "OLT", "none used"),  # no field: every device would get the same name
    ("device", "{}-{seq}", "name its fields"),
    ("device", "{0}", "name its fields"),
    ("device", "{site.__class__}", "reach into"),
    ("device", "{site[0]}-{seq}", "reach into"),
    ("device", "{site}-{seq:zz}", "malformed"),  # bad format spec
    ("device", "{site:04d}-{seq}", "malformed"),  # site is text
    ("device", "", "empty"),
    ("device", "   ", "empty"),
])
def test_bad_patterns_are_refused(kind, pattern, why):
    with pytest.raises(Invalid) as info:
        naming.check_pattern(kind, pattern)
    assert info.value.field == "pattern"
    assert why in info.value.detail


def test_unknown_kind_is_refused():
    with pytest.raises(Invalid) as info:
        naming.check_pattern("spaceship", "{seq}")
    assert info.value.field == "kind" and "spaceship" in info.value.detail


# -- templates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("name, kind, device_type, spec", DEFAULT_TEMPLATES, ids=[t[0] for t in DEFAULT_TEMPLATES])
def test_default_templates_parse(name, kind, device_type, spec):
    assert isinstance(parse_spec(spec), TemplateSpec)


def test_gpon_olt_spec():
    spec = parse_spec(next(t[3] for t in DEFAULT_TEMPLATES if t[0] == "OLT-GPON-17x16"))
    assert spec.cards[0].slots == list(range(1, 18))
    group = spec.cards[0].ports[0]
    assert (group.count, group.port_kind, group.capacity) == (16, "pon_port", 64)


PORT = {"count": 8, "port_kind": "box_port"}
CARD = {"slots": [1, 2], "card_type": "GPON-16", "ports": [{"count": 16, "port_kind": "pon_port", "capacity": 64}]}


@pytest.mark.parametrize("spec, field", [
    ({}, "spec"),  # neither cards nor ports
    ([], "spec"),
    ("OLT", "spec"),
    ({"ports": [PORT], "colour": "red"}, "spec.colour"),
    ({"ports": [{"count": 0, "port_kind": "box_port"}]}, "spec.ports.0.count"),
    ({"ports": [{"count": 5000, "port_kind": "box_port"}]}, "spec.ports.0.count"),
    ({"ports": [PORT, {"count": 8, "port_kind": "rocket"}]}, "spec.ports.1.port_kind"),
    ({"ports": [{"count": 8, "port_kind": "box_port", "capacity": 0}]}, "spec.ports.0.capacity"),
    ({"ports": [{"port_kind": "box_port"}]}, "spec.ports.0.count"),
    ({"ports": [{"count": "many", "port_kind": "box_port"}]}, "spec.ports.0.count"),
    ({"cards": [{**CARD, "slots": []}]}, "spec.cards.0.slots"),
    ({"cards": [{**CARD, "slots": [-1]}]}, "spec.cards.0.slots.0"),
    ({"cards": [{**CARD, "card_type": ""}]}, "spec.cards.0.card_type"),
    ({"cards": [{**CARD, "ports": []}]}, "spec.cards.0.ports"),
    ({"cards": [{**CARD, "ports": [{"count": 16, "port_kind": "pon_port", "capacity": 64, "x": 1}]}]},
     "spec.cards.0.ports.0.x"),
    ({"cards": [CARD, {**CARD, "slots": [2, 3]}]}, "spec"),  # slot 2 twice
    ({"ports": [PORT], "split_ratio": 1}, "spec.split_ratio"),
    ({"ports": [PORT], "medium": "copper-ish"}, "spec.medium"),
    ({"ports": [PORT], "frame_type": "xdf"}, "spec.frame_type"),
])
def test_bad_specs_are_refused_with_a_field_path(spec, field):
    with pytest.raises(Invalid) as info:
        parse_spec(spec)
    assert info.value.field == field
    assert info.value.detail.startswith(f"template {field}")
