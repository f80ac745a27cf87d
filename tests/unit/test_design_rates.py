"""Copper loop length → DSL rate: the interpolated tables, their limits, gauges."""
from __future__ import annotations

import pytest

from resource_mgr.config import Settings
from resource_mgr.design.rates import equivalent_loop_m, max_loop_for_rate, rate_for_loop

S = Settings()


def test_adsl_table_points_and_interpolation():
    assert rate_for_loop(100, "ADSL", S) == 25.0  # shorter than the first point: its rate
    assert rate_for_loop(300, "ADSL", S) == 25.0
    assert rate_for_loop(1500, "ADSL", S) == 21.0
    assert rate_for_loop(2550, "ADSL", S) == pytest.approx(12.0)  # half way from 2.1 km 16 to 3.0 km 8
    assert rate_for_loop(5200, "ADSL", S) == 1.5
    assert rate_for_loop(5201, "ADSL", S) == 0.0  # past the last point: no service


def test_vdsl_reaches_1500_m_by_default():
    assert rate_for_loop(300, "VDSL", S) == 90.0
    assert rate_for_loop(750, "VDSL", S) == pytest.approx(48.5)
    assert rate_for_loop(1500, "VDSL", S) == 20.0
    assert rate_for_loop(1501, "VDSL", S) == 0.0


def test_table_from_settings_and_unknown_technology():
    s = Settings(design_vdsl_rate_table=[(1000, 50), (200, 100)])  # sorted by length when read
    assert rate_for_loop(600, "VDSL", s) == pytest.approx(75.0)
    with pytest.raises(ValueError):
        rate_for_loop(100, "POTS", S)


def test_longest_loop_for_a_rate():
    assert max_loop_for_rate(21, "ADSL", S) == pytest.approx(1500)
    assert max_loop_for_rate(12, "ADSL", S) == pytest.approx(2550)
    assert max_loop_for_rate(200, "VDSL", S) == 0.0
    assert rate_for_loop(max_loop_for_rate(30, "VDSL", S), "VDSL", S) == pytest.approx(30)


def test_gauges_count_by_loop_resistance():
    assert equivalent_loop_m([(1000, 0.4)], S) == 1000
    assert equivalent_loop_m([(1000, 0.5)], S) == pytest.approx(1000 * 95 / 148)
    assert equivalent_loop_m([(1000, None), (500, 0.9)], S) == pytest.approx(1000 + 500 * 29.2 / 148)
    assert equivalent_loop_m([(100, 0.7)], S) == 100  # an unlisted gauge counts as 0.4 mm
