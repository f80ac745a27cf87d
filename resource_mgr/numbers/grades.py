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
        try:
            rules = tuple(GradeRule(**r) for r in config.get("rules", []))
        except TypeError as exc:
            raise Invalid(f"grade rule is malformed: {exc}", field="rules") from None
        for rule in rules:
            if not rule.run:
                letter_pattern_regex(rule.tail)
        return cls(rules=rules or DEFAULT_RULES, lucky=config.get("lucky", {"8": 1, "6": 1}),
                   unlucky=config.get("unlucky", {"4": -1}))

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
