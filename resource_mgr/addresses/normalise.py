"""One normal form for address text, used for the stored `search_key` and for every query, so
that the variants people type meet the same string:

- full-width digits and letters → half-width (NFKC), lower case, traditional → simplified
  characters (OpenCC t2s: 號 → 号, 棟 → 栋, 單元 → 单元);
- no spaces or punctuation;
- one word per part: building 栋 (also 幢, 座, 号楼, 3#), unit 单元, room 室 (also 房, 房间,
  号房), floor 层 (also 楼 before a number) — and a floor written before a room (3楼301) is
  dropped, since the room number already says it;
- `1-2-301` is building 1, unit 2, room 301 (`3-1201`: building 3, room 1201); a bare number
  after a unit or building of three digits or more is a room (2单元301 → 2单元301室).

Province, city and district stay in the key: a query that leaves them out is still a part of
it (the search matches parts), and one that names them tells two cities' 中山路 apart.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

BUILDING, UNIT, ROOM, FLOOR, NUMBER = "栋", "单元", "室", "层", "号"

_DASHED3 = re.compile(r"(?<![0-9a-z])([0-9]+|[a-z])-([0-9]+)-([0-9]+)(?![0-9])")
_DASHED2 = re.compile(r"(?<![0-9a-z-])([0-9]+|[a-z])-([0-9]{3,})(?![0-9-])")
_HASH = re.compile(r"([0-9]+|[a-z])#楼?")
_BUILDING = re.compile(r"(?<=[0-9a-z])(?:号楼|号栋|幢|座|栋)")
_ROOM = re.compile(r"(?<=[0-9])(?:号房间|号房|房间|房|室)")
_UNIT = re.compile(r"(?<=[0-9])(?:单元|单)(?!元)")
_FLOOR = re.compile(r"(?<=[0-9])(?:楼层|层|楼|f)(?=[0-9])|(?<=[0-9])(?:楼层|层|楼)$")
_FLOOR_BEFORE_ROOM = re.compile(r"[0-9]+层(?=[0-9]+室)")
_BARE_ROOM = re.compile(r"(单元|栋|层)([0-9]{3,})$|(单元|层)([0-9]+)$")
# Everything that is not a letter, digit or CJK character (spaces, punctuation of both widths).
_NOISE = re.compile(r"[^0-9a-z\u3400-\u9fff#-]+")


@lru_cache(maxsize=1)
def _t2s():
    import opencc  # offline dictionaries ship in the wheel
    return opencc.OpenCC("t2s")


def _room(m: re.Match) -> str:
    if m.group(1):
        return f"{m.group(1)}{m.group(2)}{ROOM}"
    return f"{m.group(3)}{m.group(4)}{ROOM}"


def normalise(text: str) -> str:
    """The search key of an address text or a query (see the module doc)."""
    return _normalise(text)[0]


def _normalise(text: str) -> tuple[str, bool]:
    """The key, and whether its last room was a bare number (no 室 typed: 2单元4 → 2单元4室)."""
    s = unicodedata.normalize("NFKC", text or "")
    s = _NOISE.sub("", _t2s().convert(s).lower())
    # Each rewrite only where its characters occur: standard texts need few of them, and the
    # importer and generator normalise every address of a city.
    if "#" in s:
        s = _HASH.sub(lambda m: m.group(1) + BUILDING, s)
    if "-" in s:
        s = _DASHED3.sub(lambda m: f"{m.group(1)}{BUILDING}{m.group(2)}{UNIT}{m.group(3)}{ROOM}", s)
        s = _DASHED2.sub(lambda m: f"{m.group(1)}{BUILDING}{m.group(2)}{ROOM}", s)
        s = s.replace("-", "")
    s = s.replace("#", "")
    if "楼" in s or "幢" in s or "座" in s or "号栋" in s:
        s = _BUILDING.sub(BUILDING, s)
    if s.count("单") != s.count(UNIT):
        s = _UNIT.sub(UNIT, s)
    if "房" in s:
        s = _ROOM.sub(ROOM, s)
    if "楼" in s or "层" in s or "f" in s:
        s = _FLOOR.sub(FLOOR, s)
    bare_room = False
    if s[-1:].isdigit():
        s, bare_room = _BARE_ROOM.subn(_room, s)
    if FLOOR in s:
        s = _FLOOR_BEFORE_ROOM.sub("", s)
    return s, bool(bare_room)


_TERM = re.compile(r"[0-9]+(?:号|栋|单元|室|层)?|[a-z]栋|(?:(?![a-z]栋)[^0-9])+")
_NUMBER_AFTER_ROAD = re.compile(r"(?:路|街|道|巷|弄|村|里)([0-9]+)(?=号|[^0-9室栋单层]|$)")


@dataclass(frozen=True)
class Query:
    """A normalised query: the key, its terms (text runs and numbers with their part words) and
    the parts it names exactly, for ranking."""

    key: str
    terms: tuple[str, ...] = ()
    number: str | None = None
    building: str | None = None
    unit: str | None = None
    room: str | None = None
    trigrams: frozenset[str] = field(default=frozenset())
    # The room was typed as a bare number at the end (2单元4): the clerk may still be typing it,
    # so it matches any room beginning with it (401室, 402室 ...), the room itself ranked first.
    room_prefix: bool = False


def trigrams(s: str) -> frozenset[str]:
    return grams(s, 3)


def grams(s: str, n: int) -> frozenset[str]:
    """The n-character substrings of `s` (just `s` when it is shorter)."""
    return frozenset(s[i:i + n] for i in range(len(s) - n + 1)) if len(s) >= n else frozenset({s} if s else ())


def parse_query(q: str) -> Query:
    key, bare_room = _normalise(q)
    terms = tuple(t for t in _TERM.findall(key) if t)
    if bare_room and terms and terms[-1].endswith(ROOM):
        terms = (*terms[:-1], terms[-1][:-len(ROOM)])  # 4室 → 4: a room beginning with 4

    def part(word: str) -> str | None:
        m = re.search(rf"(?<![0-9a-z])([0-9]+|[a-z]){word}", key) if word == BUILDING else \
            re.search(rf"(?<![0-9])([0-9]+){word}", key)
        return m.group(1) if m else None

    number = part(NUMBER)
    if number is None and (m := _NUMBER_AFTER_ROAD.search(key)):
        number = m.group(1)
    return Query(key, terms, number, part(BUILDING), part(UNIT), part(ROOM), trigrams(key), bare_room)


def field_variants(kind: str, value: str) -> list[str]:
    """How the stored part columns may spell a part named in a query (the columns keep the
    written form, e.g. building "3栋", "3幢" or "A座")."""
    upper = value.upper()
    forms = {
        "building": [f"{v}{w}" for v in {value, upper} for w in ("栋", "幢", "座", "号楼", "棟", "")],
        "unit": [f"{value}{w}" for w in ("单元", "單元", "")],
        "room": [f"{value}{w}" for w in ("室", "房", "")],
        "number": [f"{value}{w}" for w in ("号", "號", "")],
    }[kind]
    return sorted(set(forms))
