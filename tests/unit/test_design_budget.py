"""The optical budget: splitter losses by ratio, fibre per km, connections, margin, classes."""
from __future__ import annotations

import pytest

from resource_mgr.config import ConfigError, Settings, load_settings
from resource_mgr.design.budget import budget_for, optic_class, optical_loss, splitter_loss

S = Settings()


def test_domain_worked_check():
    """DOMAIN-FACTS: OLT → ODF → 5 km → 1:4 → 1 km → 1:16 → 0.2 km drop, 6 connectors of 0.5
    and 8 splices of 0.1 ≈ 27.3 dB: fits B+ without margin, not with 3 dB."""
    s = Settings(design_connector_db=0.5, design_end_connectors=0,
                 design_connection_loss_db={"patch": 0.5, "splice": 0.1})
    conns = ["patch"] * 6 + ["splice"] * 8
    bare = optical_loss(splitter_ratios=[4, 16], fibre_m=6200, connections=conns, settings=s, margin=False)
    assert bare == pytest.approx(27.3, abs=0.05)
    assert budget_for(bare, "B+", s).closes
    with_margin = optical_loss(splitter_ratios=[4, 16], fibre_m=6200, connections=conns, settings=s)
    assert with_margin == pytest.approx(bare + 3.0) and not budget_for(with_margin, "B+", s).closes
    assert budget_for(with_margin, "C+", s).closes


def test_splitter_losses_by_ratio_and_unlisted_ratios():
    assert [splitter_loss(r, S) for r in (2, 4, 8, 16, 32, 64, 128)] == [4.3, 7.4, 10.7, 13.9, 17.2, 21.5, 25.5]
    assert splitter_loss(12, S) == 13.9  # an unlisted ratio counts as the next larger one
    with pytest.raises(ValueError):
        splitter_loss(256, S)


def test_each_term_counts():
    base = dict(splitter_ratios=[8], fibre_m=1000, connections=["splice"], settings=S)
    loss = optical_loss(**base)
    assert loss == round(10.7 + 0.35 + 0.1 + 2 * 0.75 + 3.0, 2)
    assert optical_loss(**{**base, "fibre_m": 2000}) == pytest.approx(loss + 0.35)
    assert optical_loss(**{**base, "connections": ["splice", "patch"]}) == pytest.approx(loss + 0.75)
    assert optical_loss(**{**base, "connections": ["splice", "weld"]}) == pytest.approx(loss + 0.75)  # unknown kind


def test_optic_class_by_model_then_technology_then_default():
    s = Settings(design_optic_class_by_technology={"GPON": "B+"}, design_optic_class_by_model={"MA5800-X17": "C++"})
    assert optic_class(model="MA5800-X17", technology="GPON", settings=s) == "C++"
    assert optic_class(model="other", technology="GPON", settings=s) == "B+"
    assert optic_class(model=None, technology="10G-EPON", settings=s) == s.design_optic_class_default
    assert budget_for(30.0, "C++", s).budget_db == 35.0
    with pytest.raises(ValueError):
        budget_for(1.0, "D", s)


def test_tables_load_from_the_toml_file(tmp_path):
    cfg = tmp_path / "rmgr.toml"
    cfg.write_text('design_policy = "spread"\ndesign_margin_db = 4.0\n'
                   'design_optic_class_by_technology = { GPON = "B+", "XGS-PON" = "C+" }\n'
                   'design_vdsl_rate_table = [[300, 100], [1000, 40]]\n'
                   '[design_splitter_loss_db]\n"2" = 4.0\n"32" = 17.0\n', encoding="utf-8")
    s = load_settings({"RMGR_CONFIG_FILE": str(cfg)})
    assert s.design_policy == "spread" and s.design_margin_db == 4.0
    assert s.design_optic_class_by_technology == {"GPON": "B+", "XGS-PON": "C+"}
    assert s.design_splitter_loss_db == {"2": 4.0, "32": 17.0}
    assert s.design_vdsl_rate_table == [(300, 100), (1000, 40)]
    cfg.write_text('design_policy = "random"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="design_policy"):
        load_settings({"RMGR_CONFIG_FILE": str(cfg)})
