"""Number search patterns and the columns that make them index lookups.

A search pattern is `*` (optional: any leading digits) then digits and letters: `*AABB`,
`*8888`, `*88AB`, `8765ABCD`. A digit stands for itself; a letter for some digit: equal letters
equal digits, different letters different digits, and a letter is never a digit written
literally in the same pattern (`*88AA` is 8833, not 8888). Without the leading `*` the pattern
is the whole local number. Runs of consecutive digits (1234) are a grade (`grade=ABCD`), not a
pattern: the pattern `*ABCD` means four different digits.

Every number stores two derived strings, computed once when it is created:
- `rnumber`: the number reversed (87653344 → 44335678): a tail is a prefix of it;
- `rshape`: the shape of the reversed number, each digit named by a letter in order of first
  appearance (44335678 → AABBCDEF). The shape of the last k digits is the first k letters of it,
  so any pattern on the tail is a prefix range on `rshape`, and a digit in the pattern a position
  of `rnumber`. Both are plain B-tree range lookups on SQLite and PostgreSQL.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from itertools import permutations

from resource_mgr.errors import Invalid

MAX_LEN = 16  # the widest local number the schema holds (number.number is String(16))
_SEARCH = re.compile(r"(\*?)([0-9A-Za-z]+)")
_LETTERS = "ABCDEFGHIJ"  # ten digits, ten letters at most


def reverse(number: str) -> str:
    return number[::-1]


def shape(symbols: str) -> str:
    """Each distinct symbol named by a letter in order of first appearance: 4433 → AABB."""
    names: dict[str, str] = {}
    out = []
    for ch in symbols:
        name = names.get(ch)
        if name is None:
            if len(names) == len(_LETTERS):
                raise Invalid("a pattern can name at most ten different digits", field="pattern")
            name = names[ch] = _LETTERS[len(names)]
        out.append(name)
    return "".join(out)


def rshape(number: str) -> str:
    """The stored shape of a number: the shape of its reversed digits."""
    return shape(number[::-1])


def derived(number: str) -> tuple[str, str]:
    """(rnumber, rshape) of a local number, for the number row."""
    r = number[::-1]
    return r, shape(r)


def prefix_bound(prefix: str) -> str | None:
    """The least string above every string starting with `prefix` (of digits or letters A-J), or
    None when there is none (all nines)."""
    stripped = prefix.rstrip("9")
    if not stripped:
        return None
    return stripped[:-1] + chr(ord(stripped[-1]) + 1)


@dataclass(frozen=True)
class SearchPattern:
    """A parsed pattern: `shape_prefix` the rshape every match starts with, `digits` the literal
    digits at their positions in the reversed number, `whole` when it is the entire number."""

    text: str
    whole: bool
    shape_prefix: str
    digits: tuple[tuple[int, str], ...]
    length: int

    @property
    def digit_prefix(self) -> str:
        """The literal digits the reversed number starts with (the pattern's last digits)."""
        out = []
        for i, (pos, d) in enumerate(self.digits):
            if pos != i:
                break
            out.append(d)
        return "".join(out)

    @property
    def like_mask(self) -> str | None:
        """A LIKE pattern on rnumber for the digits not in `digit_prefix`, or None."""
        if len(self.digit_prefix) == len(self.digits):
            return None
        mask = ["_"] * (max(p for p, _ in self.digits) + 1)
        for pos, d in self.digits:
            mask[pos] = d
        return "".join(mask) + ("" if self.whole else "%")

    @property
    def number_mask(self) -> str | None:
        """`like_mask` turned round, on the number itself (which the search indexes hold)."""
        mask = self.like_mask
        if mask is None:
            return None
        body = mask.rstrip("%")[::-1]
        return body if self.whole else "%" + body

    def tail_prefixes(self, most: int) -> list[str] | None:
        """The pattern as concrete reversed tails when its letters all come after its last digit
        (`*88AB` → 72 tails 1288, 2188, ... of rnumber: B and A are two different digits, neither
        8): a number matches if and only if its rnumber starts with one of them. None when the
        pattern is not of that form (a whole number, a letter before its first digit, no letter, or
        only digits at the end) or when there would be more than `most`."""
        if self.whole or not self.digits or self.digits[-1][0] != self.length - 1 \
                or len(self.digit_prefix) == self.length:
            return None  # a whole number's shape is one narrow value already (2012AABB: 8 ms)
        rbody = [None] * self.length  # type: list[str | None]
        for pos, d in self.digits:
            rbody[pos] = d
        letters = list(dict.fromkeys(self.shape_prefix[i] for i in range(self.length) if rbody[i] is None))
        free = [d for d in "0123456789" if d not in {d for _, d in self.digits}]
        if len(letters) > len(free):
            return []
        n = 1
        for i in range(len(letters)):
            n *= len(free) - i
        if n > most:
            return None
        out = []
        for combo in permutations(free, len(letters)):
            digit_of = dict(zip(letters, combo))
            out.append("".join(ch if ch is not None else digit_of[self.shape_prefix[i]] for i, ch in enumerate(rbody)))
        return sorted(out)

    def matches(self, number: str) -> bool:
        """The same test in Python (for tests and single numbers)."""
        if self.whole and len(number) != self.length:
            return False
        if len(number) < self.length:
            return False
        r = number[::-1]
        return (shape(r)[: self.length] == self.shape_prefix
                and all(r[pos] == d for pos, d in self.digits))


def parse_pattern(text: str) -> SearchPattern:
    """`*AABB` → the shape prefix AABB of the reversed number; refuses anything else than an
    optional leading `*` and digits and letters (field `pattern`)."""
    if text is None or not isinstance(text, str):
        raise Invalid("pattern must be text such as *AABB or *8888", field="pattern")
    m = _SEARCH.fullmatch(text.strip())
    if not m:
        raise Invalid("pattern may hold a leading * and then only digits and letters, e.g. *AABB, *8888, "
                      "*88AB", field="pattern")
    star, body = m.groups()
    if len(body) > MAX_LEN:
        raise Invalid(f"pattern is longer than a number ({MAX_LEN} digits at most)", field="pattern")
    rbody = body.upper()[::-1]
    return SearchPattern(
        text=text, whole=not star, shape_prefix=shape(rbody),
        digits=tuple((i, ch) for i, ch in enumerate(rbody) if ch.isdigit()), length=len(rbody))


def parse_digits(text: str, field: str) -> str:
    """A `tail` or `contains` value: 1 to 16 digits."""
    if not isinstance(text, str) or not re.fullmatch(r"[0-9]{1,16}", text.strip()):
        raise Invalid(f"{field} must be 1 to {MAX_LEN} digits", field=field)
    return text.strip()
