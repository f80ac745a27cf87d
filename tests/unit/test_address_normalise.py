"""The one normal form of address text: every variant a counter clerk types meets the stored key."""
from __future__ import annotations

import pytest

from resource_mgr.addresses.normalise import field_variants, normalise, parse_query

STORED = normalise("广东省佛山市禅城区汾江路88号丽日花园3栋2单元301室")


def test_stored_key_keeps_every_part():
    assert STORED == "广东省佛山市禅城区汾江路88号丽日花园3栋2单元301室"


@pytest.mark.parametrize("typed, key", [
    # full-width and half-width digits and letters
    ("汾江路８８号", "汾江路88号"),
    ("Ａ座１２０１", "a栋1201室"),
    # traditional → simplified (OpenCC t2s): 號 棟 單元 麗 園 禪 區
    ("禪城區汾江路88號麗日花園3棟2單元301室", "禅城区汾江路88号丽日花园3栋2单元301室"),
    # spaces and punctuation of both widths
    ("丽日花园 3栋，2单元 301室", "丽日花园3栋2单元301室"),
    ("丽日花园（3栋）2单元/301室。", "丽日花园3栋2单元301室"),
    # building words: 栋 幢 座 号楼 #
    ("丽日花园3幢", "丽日花园3栋"),
    ("丽日花园3座", "丽日花园3栋"),
    ("丽日花园3号楼", "丽日花园3栋"),
    ("丽日花园3#楼", "丽日花园3栋"),
    ("丽日花园3#", "丽日花园3栋"),
    # unit words: 单元 单
    ("3栋2单301", "3栋2单元301室"),
    # room words: 室 房 房间 号房
    ("2单元301房", "2单元301室"),
    ("2单元301房间", "2单元301室"),
    ("2单元301号房", "2单元301室"),
    # a bare number after a unit is a room; after a building, three digits or more
    ("2单元301", "2单元301室"),
    ("3栋1201", "3栋1201室"),
    # a floor before the room is dropped (the room number says it)
    ("3栋2单元3楼301", "3栋2单元301室"),
    ("3栋2单元3层301室", "3栋2单元301室"),
    # 1-2-301: building 1, unit 2, room 301; 3-1201: building 3, room 1201
    ("1-2-301", "1栋2单元301室"),
    ("丽日花园1-2-301", "丽日花园1栋2单元301室"),
    ("a-2-301", "a栋2单元301室"),
    ("3-1201", "3栋1201室"),
    # lower case
    ("B座", "b栋"),
])
def test_variants(typed, key):
    assert normalise(typed) == key


@pytest.mark.parametrize("typed", [
    "广东省佛山市禅城区汾江路88号丽日花园3栋2单元301室",
    "佛山市禅城区汾江路88号丽日花园3栋2单元301",       # no province, bare room
    "禅城区汾江路88號麗日花園3棟2單元301房",             # no city, traditional, 房
    "汾江路８８号丽日花园３幢２单元３０１室",            # no district, full-width, 幢
    "丽日花园 1-2-301".replace("1-2-301", "3-2-301"),  # dashed, no road
])
def test_variants_are_part_of_the_stored_key(typed):
    assert normalise(typed) in STORED


def test_parse_query_names_the_parts():
    q = parse_query("汾江路88號麗日花園3棟2單元301房")
    assert (q.number, q.building, q.unit, q.room) == ("88", "3", "2", "301")
    assert q.terms == ("汾江路", "88号", "丽日花园", "3栋", "2单元", "301室")
    q = parse_query("1-2-301")
    assert (q.number, q.building, q.unit, q.room) == (None, "1", "2", "301")
    assert parse_query("汾江路88").number == "88"  # a number right after a road is the house number
    assert parse_query("Ａ座").building == "a"
    assert parse_query("丽日花园").terms == ("丽日花园",)
    assert parse_query("丽日花园").number is None


def test_field_variants_cover_written_forms():
    assert {"3栋", "3幢", "3座", "3号楼", "3"} <= set(field_variants("building", "3"))
    assert {"A座", "a座"} <= set(field_variants("building", "a"))
    assert {"2单元", "2"} <= set(field_variants("unit", "2"))
    assert {"301室", "301房", "301"} <= set(field_variants("room", "301"))
    assert {"88号", "88號", "88"} <= set(field_variants("number", "88"))
