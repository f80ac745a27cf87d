"""Number grades (靚號) and letter patterns."""
from __future__ import annotations

import pytest

from resource_mgr.errors import Invalid
from resource_mgr.numbers.grades import DEFAULT_RULES, GradeRule, Grader, letter_pattern_regex

G = Grader()


@pytest.mark.parametrize("number, grade, level", [
    ("87650000", "AAAA", 6),
    ("87659999", "AAAA", 6),
    ("87658888", "AAAA", 7),  # 8 raises
    ("87656666", "AAAA", 7),  # 6 raises
    ("87654444", "AAAA", 5),  # 4 lowers
    ("87600000", "AAAAA", 7),
    ("87650123", "ABCD", 4),
    ("87653456", "ABCD", 5),  # ends in 6
    ("87651234", "ABCD", 3),  # ends in 4
    ("87612345", "ABCDE", 5),
    ("87657653", "normal", 0),
    ("87659876", "DCBA", 3),  # ends in 6
    ("87655432", "DCBA", 2),
    ("87650111", "AAA", 3),
    ("87651122", "AABB", 3),
    ("87651212", "ABAB", 3),
    ("87651221", "ABBA", 2),
    ("87651233", "AA", 1),
    ("87651244", "AA", 1),  # lowered, but a pattern keeps at least level 1
    ("87653579", "normal", 0),
    ("87653578", "normal", 0),  # a lucky last digit alone does not make a golden number
    ("87653574", "unlucky", -1),
    ("8765890", "normal", 0),  # 7-digit local numbers too
    ("8767777", "AAAA", 6),
])
def test_default_grades(number, grade, level):
    assert G.grade(number) == (grade, level)


def test_higher_pattern_wins_and_aabb_needs_two_different_digits():
    assert G.grade("87651111")[0] == "AAAA"  # not AABB, ABAB, AAA or AA
    assert G.grade("87657890")[0] == "normal"  # 9→0 is not a run
    assert G.grade_all(["87650000", "87653579"]) == [("AAAA", 6), ("normal", 0)]


def test_rules_from_config():
    g = Grader.from_config({
        "rules": [{"name": "TAIL-520", "level": 9, "tail": "520"},
                  {"name": "RUN3", "level": 2, "run": 3},
                  {"name": "DOWN3", "level": 1, "run": 3, "direction": "down"}],
        "lucky": {"9": 2}, "unlucky": {"4": -3},
    })
    assert g.grade("87651520") == ("TAIL-520", 9)
    assert g.grade("87651789") == ("RUN3", 4)
    assert g.grade("87651321") == ("DOWN3", 1)
    assert g.grade("87650000") == ("normal", 0)  # configured rules replace the defaults
    assert g.grade("87651354") == ("unlucky", -3)
    assert Grader.from_config({}).rules == DEFAULT_RULES


@pytest.mark.parametrize("config, field", [
    ({"rules": "AAAA"}, "rules"),
    ({"rules": ["AAAA"]}, "rules[0]"),
    ({"rules": [{"name": "x", "level": 1, "tail": "AA", "colour": "red"}]}, "rules[0]"),
    ({"rules": [{"level": 1, "tail": "AA"}]}, "rules[0]"),
    ({"rules": [{"name": "x", "level": "high", "tail": "AA"}]}, "rules[0].level"),
    ({"rules": [{"name": "x", "level": 1}]}, "rules[0].tail"),
    ({"rules": [{"name": "x", "level": 1, "tail": "AA", "run": 3}]}, "rules[0].tail"),
    ({"rules": [{"name": "x", "level": 1, "run": -2}]}, "rules[0].run"),
    ({"rules": [{"name": "x", "level": 1, "run": 3, "direction": "sideways"}]}, "rules[0].direction"),
    ({"rules": [{"name": "x", "level": 1, "tail": "A-A"}]}, "rules[0].tail"),
    ({"rules": [{"name": "", "level": 1, "tail": "AA"}]}, "rules[0].name"),
    ({"lucky": {"8": "x"}}, "lucky"),
    ({"lucky": {"88": 1}}, "lucky"),
    ({"unlucky": ["4"]}, "unlucky"),
    ({"rule": []}, "rule"),  # a typo is not silently ignored
])
def test_bad_config_is_refused(config, field):
    with pytest.raises(Invalid) as info:
        Grader.from_config(config)
    assert info.value.field == field


@pytest.mark.parametrize("pattern, yes, no", [
    ("*AABB", ["87651122", "3344"], ["87651111", "87651123"]),
    ("*8888", ["87658888"], ["87658887", "88887658"]),
    ("*8*", ["87651234", "8"], ["1234"]),
    ("AAA", ["777"], ["7777", "778"]),
    ("8765????", ["87650000", "87659999"], ["8765000", "87750000"]),
    ("*?AB", ["87651212", "123"], ["87651233"]),
    ("8765*", ["87650000", "8765"], ["88650000"]),
    ("*abba", ["87651221"], ["87651111"]),
])
def test_letter_pattern_regex(pattern, yes, no):
    rx = letter_pattern_regex(pattern)
    assert all(rx.match(n) for n in yes), [n for n in yes if not rx.match(n)]
    assert not any(rx.match(n) for n in no), [n for n in no if rx.match(n)]


@pytest.mark.parametrize("pattern", ["", "87-65", "*AA BB", "%", "8765.*"])
def test_bad_letter_patterns_are_refused(pattern):
    with pytest.raises(Invalid) as info:
        letter_pattern_regex(pattern)
    assert info.value.field == "pattern"


def test_run_rule_on_a_short_number():
    assert not GradeRule("R", 1, run=5).matches("123")
