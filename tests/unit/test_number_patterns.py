"""Search patterns: letters for repeated digits, a leading * for any prefix, digits literal; the
stored reversed number and shape make each pattern a prefix test."""
from __future__ import annotations

import random
import re

import pytest

from resource_mgr.errors import Invalid
from resource_mgr.numbers.patterns import derived, parse_digits, parse_pattern, prefix_bound, rshape, shape


def reference(pattern: str) -> re.Pattern[str]:
    """An independent regex for the documented meaning: equal letters equal digits, different
    letters different digits, a letter never a digit written in the pattern."""
    star, body = (pattern[0] == "*"), pattern.lstrip("*").upper()
    literal = sorted({c for c in body if c.isdigit()})
    seen: list[str] = []
    out = []
    for ch in body:
        if ch.isdigit():
            out.append(ch)
        elif ch in seen:
            out.append(f"(?P=L{ch})")
        else:
            not_before = "".join(f"(?!(?P=L{o}))" for o in seen)
            not_literal = f"(?![{''.join(literal)}])" if literal else ""
            out.append(f"{not_before}{not_literal}(?P<L{ch}>\\d)")
            seen.append(ch)
    return re.compile(("^\\d*" if star else "^") + "".join(out) + "$")


def test_shape_names_digits_in_order_of_first_appearance():
    assert shape("4433") == "AABB"
    assert shape("1234") == "ABCD"
    assert shape("8888") == "AAAA"
    assert shape("1212") == "ABAB"
    assert rshape("87653344") == "AABBCDEF"
    assert derived("87651221") == ("12215678", "ABBACDEF")


@pytest.mark.parametrize("pattern,yes,no", [
    ("*AABB", ["87653344", "1112299"], ["87653333", "87653434", "87654321"]),
    ("*8888", ["87658888", "2228888"], ["87658889", "87653333"]),
    ("*ABAB", ["87651212", "87659090"], ["87651111", "87651221"]),
    ("*ABBA", ["87651221", "87653883"], ["87651111", "87651212"]),
    ("*ABCD", ["87651234", "87659527"], ["87651123", "87651213"]),
    ("*AAAA", ["87650000", "87659999"], ["87650001"]),
    ("*88AA", ["87658833", "87658800"], ["87658888", "87653388"]),
    ("*A8A8", ["87651818"], ["87658888", "87651828"]),
    ("87653344", ["87653344"], ["187653344", "87653345"]),
    ("8765AABB", ["87653344"], ["187653344", "87653333"]),
    ("*aabb", ["87653344"], ["87653333"]),
])
def test_patterns(pattern, yes, no):
    p = parse_pattern(pattern)
    for n in yes:
        assert p.matches(n), (pattern, n)
        assert reference(pattern).match(n), (pattern, n)
    for n in no:
        assert not p.matches(n), (pattern, n)
        assert not reference(pattern).match(n), (pattern, n)


def test_prefix_test_equals_the_reference_regex_on_random_numbers():
    rng = random.Random(9)
    patterns = ["*AABB", "*ABAB", "*ABBA", "*ABCD", "*AAAA", "*AAA", "*8888", "*88AB", "*A8B8", "*ABCDE",
                "*AAAAA", "*1A", "*AB9", "8765ABAB", "*AABBCC", "*9", "*99", "*AB", "ABCDEFGH"]
    numbers = [f"{rng.randrange(2_000_0000, 9_999_9999)}" for _ in range(3000)]
    numbers += [f"8765{t:04d}" for t in range(10_000)]  # every tail once
    numbers += [f"{rng.randrange(200_0000, 999_9999)}" for _ in range(500)]  # 7 digits too
    for pattern in patterns:
        p, ref = parse_pattern(pattern), reference(pattern)
        for n in numbers:
            assert p.matches(n) == bool(ref.match(n)), (pattern, n)


def test_sql_parts_of_a_pattern():
    p = parse_pattern("*AB88")
    assert (p.shape_prefix, p.digit_prefix, p.like_mask, p.whole) == ("AABC", "88", None, False)
    p = parse_pattern("*8A8B")  # reversed B8A8: digits at positions 1 and 3
    assert (p.shape_prefix, p.digit_prefix, p.like_mask, p.number_mask) == ("ABCB", "", "_8_8%", "%8_8_")
    p = parse_pattern("8765AABB")
    assert p.whole and p.like_mask == "____5678" and p.number_mask == "8765____"
    assert parse_pattern("*8888").digit_prefix == "8888"


def test_prefix_bound_is_the_next_string_after_every_extension():
    assert prefix_bound("AABB") == "AABC"
    assert prefix_bound("8888") == "8889"
    assert prefix_bound("4899") == "49"
    assert prefix_bound("999") is None
    for prefix in ("AABB", "8888", "4899", "J"):
        upper = prefix_bound(prefix)
        for ext in ("", "0", "9999", "JJJJ", "A"):
            assert prefix + ext < upper


@pytest.mark.parametrize("bad", ["", "*", "**AABB", "AA*BB", "*AA?B", "*AABB*", "*AA-BB", "*" + "A" * 17,
                                 "*ABCDEFGHIJK", " ", "*Ａ"])
def test_bad_patterns_are_refused_naming_the_field(bad):
    with pytest.raises(Invalid) as exc:
        parse_pattern(bad)
    assert exc.value.field == "pattern"


def test_digits_of_tail_and_contains():
    assert parse_digits("8888", "tail") == "8888"
    for bad in ("", "88a8", "1" * 17, "-1"):
        with pytest.raises(Invalid) as exc:
            parse_digits(bad, "contains")
        assert exc.value.field == "contains"
