"""Trust-based limits: a principal that lets pre-occupations expire uncommitted gets smaller quotas.

The rule (documented in the error a principal receives, so nobody has to guess it):

- every pre-occupation that expires uncommitted adds 1 to the principal's *balance*
  (`record_expirations`, called by the expiry sweep with {principal: count});
- every commit (竣工, a pre-occupation that became occupation) takes 1 off the balance, never
  below 0 (`record_commit`);
- while balance >= settings.trust_expired_threshold the principal is *reduced*: at most
  settings.quota_reduced_preoccupations concurrent pre-occupations and
  settings.quota_reduced_golden_numbers golden numbers (靚號) held at once, instead of
  settings.quota_preoccupations / settings.quota_golden_numbers;
- as soon as commits bring the balance below the threshold, the full quotas are back.

The counters are per principal name ("user:alice", "system:bss"): a client system that pre-occupies
on behalf of many counters is one principal. Writes are single UPDATE statements (increments done
by the database), so concurrent sweeps and commits do not lose counts.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from resource_mgr.clock import utcnow
from resource_mgr.config import Settings
from resource_mgr.errors import DomainError, Invalid
from resource_mgr.security.models import PrincipalTrust
from resource_mgr.security.principal import Principal


class QuotaExceeded(DomainError):
    """A principal holds as many pre-occupations (or golden numbers) as its quota allows."""

    code, status = "quota_exceeded", 409


@dataclass(frozen=True)
class TrustStatus:
    principal: str
    expired: int
    committed: int
    balance: int
    threshold: int
    reduced: bool
    quota_preoccupations: int
    quota_golden_numbers: int
    commits_to_restore: int  # 0 when not reduced
    last_expired_at: datetime | None = None
    last_committed_at: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for key in ("last_expired_at", "last_committed_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def _name(principal: Principal | str) -> str:
    name = principal.name if isinstance(principal, Principal) else principal
    if not name:
        raise Invalid("a principal name is needed", field="principal")
    return name


def _add(session: Session, name: str, *, expired: int = 0, committed: int = 0) -> None:
    """Add to one principal's counters in one statement; create the row on first use."""
    now = utcnow()
    values: dict[str, Any] = {}
    if expired:
        values.update(expired=PrincipalTrust.expired + expired, balance=PrincipalTrust.balance + expired,
                      last_expired_at=now)
    if committed:
        values.update(committed=PrincipalTrust.committed + committed,
                      balance=case((PrincipalTrust.balance > committed, PrincipalTrust.balance - committed),
                                   else_=0),
                      last_committed_at=now)
    stmt = update(PrincipalTrust).where(PrincipalTrust.principal == name).values(**values)
    stmt = stmt.execution_options(synchronize_session=False)
    if session.execute(stmt).rowcount:
        return
    try:
        with session.begin_nested():
            session.add(PrincipalTrust(principal=name, expired=expired, committed=committed, balance=expired,
                                       last_expired_at=now if expired else None,
                                       last_committed_at=now if committed else None))
    except IntegrityError:  # another transaction created it meanwhile: add to theirs
        session.execute(stmt)


def record_expirations(session: Session, counts: dict[str, int]) -> None:
    """Count pre-occupations that expired uncommitted, per principal name: {"user:alice": 2}.
    Runs inside the caller's transaction (the sweep's unit of work); zero counts are ignored."""
    for name, n in sorted(counts.items()):  # sorted: a stable lock order between concurrent sweeps
        if not isinstance(n, int) or n < 0:
            raise Invalid(f"expiry count for {name} must be a non-negative integer", field="counts")
        if n:
            _add(session, _name(name), expired=n)


def record_commit(session: Session, principal: Principal | str, n: int = 1) -> None:
    """Count `n` commits (pre-occupations that became occupations): each earns back one expiry."""
    if not isinstance(n, int) or n < 0:
        raise Invalid("commit count must be a non-negative integer", field="n")
    if n:
        _add(session, _name(principal), committed=n)


def status(session: Session, principal: Principal | str, settings: Settings) -> TrustStatus:
    name = _name(principal)
    row = session.get(PrincipalTrust, name, populate_existing=True)
    return _status(name, row, settings)


def _status(name: str, row: PrincipalTrust | None, settings: Settings) -> TrustStatus:
    expired, committed, balance = (row.expired, row.committed, row.balance) if row else (0, 0, 0)
    threshold = settings.trust_expired_threshold
    reduced = balance >= threshold
    return TrustStatus(
        principal=name, expired=expired, committed=committed, balance=balance, threshold=threshold,
        reduced=reduced,
        quota_preoccupations=settings.quota_reduced_preoccupations if reduced else settings.quota_preoccupations,
        quota_golden_numbers=settings.quota_reduced_golden_numbers if reduced else settings.quota_golden_numbers,
        commits_to_restore=balance - threshold + 1 if reduced else 0,
        last_expired_at=row.last_expired_at if row else None,
        last_committed_at=row.last_committed_at if row else None,
    )


def list_status(session: Session, settings: Settings, *, reduced_only: bool = False) -> list[TrustStatus]:
    rows = session.scalars(select(PrincipalTrust).order_by(PrincipalTrust.balance.desc(),
                                                           PrincipalTrust.principal))
    out = [_status(r.principal, r, settings) for r in rows]
    return [s for s in out if s.reduced] if reduced_only else out


def check_quota(session: Session, principal: Principal | str, settings: Settings, *,
                current_preoccupations: int, golden: bool, current_golden: int = 0) -> TrustStatus:
    """Refuse one more pre-occupation when the principal already holds its quota.

    `current_preoccupations`: the principal's live (unexpired) pre-occupations now, counted by the
    caller; `golden`: the new one includes a golden number, and then `current_golden` is how many
    golden numbers it already holds pre-occupied. Raises QuotaExceeded (409 `quota_exceeded`)
    whose detail says which quota, whether it is the reduced one, and how to get it back."""
    st = status(session, principal, settings)
    why = ""
    if st.reduced:
        why = (f" This is the reduced quota: {st.balance} of your pre-occupations expired without being "
               f"committed (threshold {st.threshold}); each commit earns one back, and the full quota "
               f"({settings.quota_preoccupations} pre-occupations, {settings.quota_golden_numbers} golden "
               f"numbers) returns after {st.commits_to_restore} more commit(s). Commit or cancel the orders "
               f"you hold instead of letting them expire.")
    extra = {"quota_preoccupations": st.quota_preoccupations, "quota_golden_numbers": st.quota_golden_numbers,
             "reduced": st.reduced, "expired_balance": st.balance, "commits_to_restore": st.commits_to_restore}
    if current_preoccupations >= st.quota_preoccupations:
        raise QuotaExceeded(
            f"{st.principal} already holds {current_preoccupations} pre-occupations; the quota is "
            f"{st.quota_preoccupations}.{why or ' Commit or cancel some before pre-occupying more.'}",
            field="order_ref", **extra)
    if golden and current_golden >= st.quota_golden_numbers:
        raise QuotaExceeded(
            f"{st.principal} already holds {current_golden} golden numbers pre-occupied; the quota is "
            f"{st.quota_golden_numbers}.{why or ' Commit or cancel some before choosing another.'}",
            field="number", **extra)
    return st
