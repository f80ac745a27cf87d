"""Standard-address search: what a counter clerk types → the standard addresses, best first.

The query is normalised like the stored `search_key` (normalise.py) and cut into terms: text
runs (汾江路, 丽日花园) and numbers with their part word (88号, 3栋, 2单元, 301室).

1. Exact stage: the addresses whose key contains every term, in any order. The terms of three
   characters or more go through the backend's trigram index — pg_trgm GIN on PostgreSQL,
   the FTS5 trigram table `address_fts` on SQLite (kept in step by triggers) — shorter ones
   (3栋) only filter what the index found. Never a scan of the table. Ranked in SQL by a score:
   +1 for each part the query names that the address has exactly (number, building, unit,
   room), plus up to 0.5 for how much of the key the query covers (so a building comes before
   its rooms when no room is asked for). The total is the count of matches.
2. Fuzzy stage, only when nothing matched exactly (a typo, a city without 市): up to
   5 × `FUZZY_CANDIDATES` addresses containing a trigram of the query's text runs (through the
   same indexes; the closest first by pg_trgm similarity or FTS5 bm25), kept when at least
   `addresses_fuzzy_min_share` of the query's trigrams are in the key, scored by the share of
   the query's character pairs in the key plus the same bonuses. Nothing left: an empty list.

A query shorter than three characters once normalised matches nothing (no index can answer it
without scanning).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Float, String, case, func, literal, or_, select, text
from sqlalchemy.orm import Session

from resource_mgr.addresses.normalise import Query, field_variants, parse_query, trigrams
from resource_mgr.addresses.normalise import grams as normalise_grams
from resource_mgr.config import Settings
from resource_mgr.errors import Invalid
from resource_mgr.inventory.models import Address, LocalNetwork

FUZZY_CANDIDATES = 200
MIN_INDEXED = 3  # the trigram indexes need three characters
_PARTS = ("number", "building", "unit", "room")
ROOM_PREFIX_BONUS = 0.75  # a room beginning with a bare room number typed last, under an exact one


@dataclass(frozen=True)
class AddressHit:
    address: Address
    score: float


def search_addresses(session: Session, q: str, *, local_network_ids: set[str] | None,
                     local_network: str | None = None, limit: int = 10, offset: int = 0,
                     settings: Settings | None = None) -> tuple[list[AddressHit], int]:
    if q is None or not q.strip():
        raise Invalid("q must not be empty", field="q")
    scope = []
    if local_network_ids is not None:
        scope.append(Address.local_network_id.in_(sorted(local_network_ids)))
    if local_network:
        ln = session.scalar(select(LocalNetwork.id).where(
            (LocalNetwork.code == local_network) | (LocalNetwork.id == local_network)))
        if ln is None:
            raise Invalid(f"unknown local network {local_network!r}", field="local_network")
        scope.append(Address.local_network_id == ln)
    query = parse_query(q)
    if len(query.key) < MIN_INDEXED:
        return [], 0
    postgres = session.get_bind().dialect.name == "postgresql"
    where = [*_contains_all(query, postgres), *scope]
    score = _score_sql(query)
    rows = session.execute(  # the page and the total in one statement
        select(Address, score.label("score"), func.count().over().label("total")).where(*where)
        .order_by(score.desc(), func.length(Address.search_key), Address.name, Address.id)
        .limit(limit).offset(offset)).all()
    total = rows[0].total if rows else 0
    if not rows and offset:  # past the last page: the total still counts
        total = session.scalar(select(func.count()).select_from(Address).where(*where)) or 0
    if total:
        return [AddressHit(r[0], round(float(r.score), 4)) for r in rows], total
    return _fuzzy(session, query, scope, postgres, (settings or Settings()).addresses_fuzzy_min_share,
                  offset, limit)


# A leading province / city / district (广东省佛山市禅城区): in nearly every key of a local
# network, so its trigrams would make the index read most of the table. The index is asked for
# the rest of the term; the whole term is still required (a filter on the rows the index found).
_REGION = re.compile(r"^(?:[^省市区县]{2,7}?省)?(?:[^省市区县]{1,7}?市)?(?:[^省市区县]{1,7}?[区县])?")


def _is_text(term: str) -> bool:
    """A text run (汾江路, 丽日花园), not a number with its part word (88号, 3栋, a栋)."""
    return not term[0].isdigit() and not (len(term) == 2 and term[1] == "栋")


def _seek(term: str) -> str:
    """The part of a text term the index is asked for: without a leading region when the rest
    is long enough for the trigram index."""
    rest = term[_REGION.match(term).end():]
    return rest if len(rest) >= MIN_INDEXED else term


def _contains_all(query: Query, postgres: bool) -> list:
    """Every term in the key. The index is asked only for the text runs (without their region):
    numbers and part words (88号, 2单元, 301) are in a good share of all addresses and would make
    it read much of itself; they, and whatever the index was not asked for, filter its rows."""
    terms = list(query.terms) or [query.key]
    seek = [_seek(t) for t in terms if _is_text(t) and len(t) >= MIN_INDEXED]
    if not seek:
        seek = [t for t in terms if len(t) >= MIN_INDEXED] or [query.key]
    rest = [t for t in terms if t not in seek]
    # strpos / instr, not LIKE: the planner would hand a LIKE to the GIN index too
    contains = func.strpos if postgres else func.instr
    filters = [contains(Address.search_key, literal(t, String)) > 0 for t in rest]
    if postgres:  # the GIN trigram index answers LIKE '%…%' of three characters or more
        return [*(Address.search_key.like(f"%{t}%") for t in seek), *filters]  # terms hold no % or _
    match = " AND ".join(_phrase(t) for t in seek)
    return [Address.id.in_(_fts(f"search_key : ({match})")), *filters]


def _phrase(term: str) -> str:
    return '"' + term.replace('"', '""') + '"'


def _fts(match: str):
    return text("SELECT id FROM address_fts WHERE address_fts MATCH :m").bindparams(m=match).columns(id=String)


def _score_sql(query: Query):
    # search_key is never empty for a match (it contains the query), so the division is safe.
    score = literal(len(query.key) * 0.5, Float) / func.length(Address.search_key)
    for part in _PARTS:
        value = getattr(query, part)
        if value is not None:
            column = getattr(Address, part)
            exact = func.lower(column).in_([v.lower() for v in field_variants(part, value)])
            if part == "room" and query.room_prefix:  # still being typed: 4 → 401室 after 4室
                score = score + case((exact, 1.0), (column.like(f"{value}%"), ROOM_PREFIX_BONUS), else_=0.0)
            else:
                score = score + case((exact, 1.0), else_=0.0)
    return score


def _bonus(query: Query, address: Any) -> float:
    """The exact-part bonus of the exact stage's SQL score, for a row of the fuzzy stage."""
    total = 0.0
    for part in _PARTS:
        value = getattr(query, part)
        if value is None:
            continue
        have = (getattr(address, part) or "").lower()
        if have in {v.lower() for v in field_variants(part, value)}:
            total += 1.0
        elif part == "room" and query.room_prefix and have.startswith(value.lower()):
            total += ROOM_PREFIX_BONUS
    return total


def _fuzzy_grams(query: Query) -> list[str]:
    """The trigrams that find the fuzzy stage's candidates: those of the text runs without their
    region (names of roads and compounds are rare; 佛山市禅城区, 2单元 or 301室 are in a good share
    of all addresses, and asking the index for them would read most of it), or the whole key's
    when it has no text."""
    text_runs = [_seek(t) for t in query.terms if _is_text(t)]
    found = sorted({g for t in text_runs for g in trigrams(t) if len(g) == 3})
    return found or sorted(g for g in query.trigrams if len(g) == 3)


def _fuzzy(session: Session, query: Query, scope: list, postgres: bool, min_share: float,
           offset: int, limit: int) -> tuple[list[AddressHit], int]:
    """The page of the fuzzy stage's hits and their number (at most FUZZY_CANDIDATES). The
    candidates are scored from a few columns; only the page's addresses are loaded."""
    grams = query.trigrams
    seek = _fuzzy_grams(query)
    if not seek:
        return [], 0
    columns = (Address.id, Address.search_key, Address.name, *(getattr(Address, p) for p in _PARTS))
    if postgres:  # the GIN trigram index answers each LIKE; the closest by pg_trgm similarity
        sim = func.similarity(Address.search_key, literal(query.key))
        stmt = (select(*columns).where(or_(*(Address.search_key.like(f"%{g}%") for g in seek)), *scope)
                .order_by(sim.desc(), Address.id).limit(FUZZY_CANDIDATES * 5))
    else:  # FTS5: any of the trigrams, the closest by bm25
        match = " OR ".join(_phrase(g) for g in seek)
        ranked = text("SELECT id FROM address_fts WHERE address_fts MATCH :m ORDER BY rank LIMIT :n") \
            .bindparams(m=f"search_key : ({match})", n=FUZZY_CANDIDATES * 5).columns(id=String).subquery()
        stmt = select(*columns).join(ranked, ranked.c.id == Address.id).where(*scope)
    pairs = normalise_grams(query.key, 2)
    scored = []
    for row in session.execute(stmt):
        share = len(grams & trigrams(row.search_key)) / len(grams)
        if share >= min_share:
            # Scored by shared pairs of characters, finer than trigrams: 广州丽日 still finds 广州
            # in 广州市…丽日花园 when the 市 breaks every trigram across it.
            pair_share = len(pairs & normalise_grams(row.search_key, 2)) / len(pairs)
            cover = 0.5 * min(1.0, len(query.key) / max(len(row.search_key), 1))
            scored.append((round(pair_share + cover + _bonus(query, row), 4), row))
    scored.sort(key=lambda h: (-h[0], len(h[1].search_key), h[1].name, h[1].id))
    scored = scored[:FUZZY_CANDIDATES]
    page = scored[offset:offset + limit]
    loaded = {a.id: a for a in session.scalars(select(Address).where(Address.id.in_([r.id for _, r in page])))} \
        if page else {}
    return [AddressHit(loaded[r.id], score) for score, r in page], len(scored)


__all__ = ["AddressHit", "search_addresses"]
