"""Number grades (靚號) from configurable pattern rules on the tail, computed once when numbers
are created. Letters in a pattern stand for digits: equal letters equal digits, different letters
different digits (`AABB` matches 3344, not 3333). A rule of kind `run` matches a run of
consecutive digits (1234 up, 9876 down). Lucky digits raise a grade, unlucky ones lower it."""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from resource_mgr.errors import Invalid


def letter_pattern_regex(pattern: str) -> re.Pattern[str]:
    """`*AABB`, `8888`, `AAA`, `*8*`: letters for repeated digits, digits literal, `*` anything.
    Anchored at the end unless it ends with `*`."""
    if not pattern or not re.fullmatch(r"[0-9A-Za-z*?]+", pattern):
        raise Invalid("pattern may hold only digits, letters, * and ?", field="pattern")
    seen: dict[str, int] = {}
    parts: list[str] = []
    for ch in pattern:
        if ch == "*":
            parts.append(".*")
        elif ch == "?":
            parts.append(r"\d")
        elif ch.isdigit():
            parts.append(ch)
        else:
            ch = ch.upper()
            if ch in seen:
                parts.append(f"(?P=L{ch})")
            else:
                others = "".join(f"(?!(?P=L{o}))" for o in seen)
                seen[ch] = len(seen)
                parts.append(f"{others}(?P<L{ch}>\\d)")
    return re.compile("^" + "".join(parts) + "$")


@dataclass(frozen=True)
class GradeRule:
    name: str
    level: int
    tail: str = ""  # a letter pattern on the tail, e.g. "AAAA"
    run: int = 0  # or a run of consecutive digits of this length at the end
    direction: str = "up"  # up (1234) or down (4321) for runs

    def matches(self, number: str) -> bool:
        if self.run:
            tail = number[-self.run:]
            if len(tail) < self.run:
                return False
            step = 1 if self.direction == "up" else -1
            return all(int(b) - int(a) == step for a, b in zip(tail, tail[1:]))
        return bool(letter_pattern_regex("*" + self.tail).match(number))


DEFAULT_RULES: tuple[GradeRule, ...] = (
    GradeRule("AAAAA", 7, tail="AAAAA"),
    GradeRule("AAAA", 6, tail="AAAA"),
    GradeRule("ABCDE", 5, run=5),
    GradeRule("ABCD", 4, run=4),
    GradeRule("AAA", 3, tail="AAA"),
    GradeRule("AABB", 3, tail="AABB"),
    GradeRule("ABAB", 3, tail="ABAB"),
    GradeRule("DCBA", 2, run=4, direction="down"),
    GradeRule("ABBA", 2, tail="ABBA"),
    GradeRule("AA", 1, tail="AA"),
)


@dataclass(frozen=True)
class Grader:
    rules: tuple[GradeRule, ...] = DEFAULT_RULES
    lucky: dict[str, int] = field(default_factory=lambda: {"8": 1, "6": 1, "9": 0})
    unlucky: dict[str, int] = field(default_factory=lambda: {"4": -1})

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "Grader":
        """Rules and lucky/unlucky digits from configuration. Anything malformed (an unknown
        key, a level that is not a whole number, a rule with neither or both of `tail` and
        `run`, a bad direction, a lucky "digit" that is not one) is refused, naming it."""
        if not isinstance(config, dict):
            raise Invalid("grade configuration must be a mapping", field="rules")
        unknown = set(config) - {"rules", "lucky", "unlucky"}
        if unknown:
            raise Invalid(f"unknown grade setting(s): {', '.join(sorted(map(str, unknown)))}",
                          field=sorted(map(str, unknown))[0])
        raw_rules = config.get("rules", [])
        if not isinstance(raw_rules, list):
            raise Invalid("rules must be a list of rules", field="rules")
        rules = []
        for i, raw in enumerate(raw_rules):
            where = f"rules[{i}]"
            try:
                rule = GradeRule(**raw)
            except TypeError as exc:
                raise Invalid(f"grade rule is malformed: {exc}", field=where) from None
            if not isinstance(rule.name, str) or not rule.name:
                raise Invalid("a grade rule needs a name", field=f"{where}.name")
            if type(rule.level) is not int:
                raise Invalid("level must be a whole number", field=f"{where}.level")
            if type(rule.run) is not int or rule.run < 0 or rule.run == 1 or rule.run > 10:
                raise Invalid("run must be a length of 2 to 10 digits", field=f"{where}.run")
            if bool(rule.run) == bool(rule.tail):
                raise Invalid("a grade rule has either a tail pattern or a run length", field=f"{where}.tail")
            if rule.direction not in ("up", "down"):
                raise Invalid("direction must be up or down", field=f"{where}.direction")
            if rule.tail:
                try:
                    letter_pattern_regex(rule.tail)
                except Invalid as exc:
                    raise Invalid(exc.detail, field=f"{where}.tail") from None
            rules.append(rule)
        digits = {}
        for key, default in (("lucky", {"8": 1, "6": 1}), ("unlucky", {"4": -1})):
            value = config.get(key, default)
            if not isinstance(value, dict) or not all(
                    isinstance(d, str) and len(d) == 1 and d.isdigit() and type(v) is int for d, v in value.items()):
                raise Invalid(f"{key} must map single digits to whole numbers, e.g. {default}", field=key)
            digits[key] = dict(value)
        return cls(rules=tuple(rules) or DEFAULT_RULES, **digits)

    def grade(self, number: str) -> tuple[str, int]:
        """(grade name, level): the best matching rule, raised by a lucky last digit (8s and 6s
        up), lowered by an unlucky one (4s down). Plain numbers are ("normal", 0); plain numbers
        ending in an unlucky digit get a negative level ("unlucky")."""
        last = number[-1]
        bonus = self.lucky.get(last, 0) + self.unlucky.get(last, 0)
        for rule in sorted(self.rules, key=lambda r: -r.level):
            if rule.matches(number):
                return rule.name, max(rule.level + bonus, 1)
        if bonus < 0:
            return "unlucky", bonus
        return "normal", 0

    def grade_all(self, numbers: Iterable[str]) -> list[tuple[str, int]]:
        return [self.grade(n) for n in numbers]
