"""Trust-based limits: quotas drop past the expiry threshold and come back with commits."""
from __future__ import annotations

import pytest

from resource_mgr.config import Settings
from resource_mgr.errors import Invalid
from resource_mgr.security import trust
from security_helpers import bearer, ensure_security_tables, issue, make_app

SETTINGS = Settings(trust_expired_threshold=3, quota_preoccupations=10, quota_golden_numbers=4,
                    quota_reduced_preoccupations=2, quota_reduced_golden_numbers=1)


@pytest.fixture
def tdb(db):
    ensure_security_tables(db)
    return db


def expire(db, counts):
    with db.unit_of_work() as uow:
        trust.record_expirations(uow.session, counts)
        uow.commit()


def commit(db, who, n=1):
    with db.unit_of_work() as uow:
        trust.record_commit(uow.session, who, n)
        uow.commit()


def check(db, who, **kwargs):
    with db.read_session() as s:
        return trust.check_quota(s, who, SETTINGS, **kwargs)


def status(db, who):
    with db.read_session() as s:
        return trust.status(s, who, SETTINGS)


def test_full_quota_until_the_threshold(tdb):
    assert status(tdb, "user:alice").reduced is False  # never seen: full quota
    expire(tdb, {"user:alice": 2, "user:bob": 1, "user:zero": 0})
    st = status(tdb, "user:alice")
    assert (st.expired, st.balance, st.reduced, st.quota_preoccupations) == (2, 2, False, 10)
    check(tdb, "user:alice", current_preoccupations=9, golden=True, current_golden=3)
    with pytest.raises(trust.QuotaExceeded) as exc:
        check(tdb, "user:alice", current_preoccupations=10, golden=False)
    assert exc.value.code == "quota_exceeded" and exc.value.status == 409
    assert "quota is 10" in exc.value.detail and "reduced" not in exc.value.detail
    assert status(tdb, "user:zero").expired == 0


def test_quota_drops_past_the_threshold_and_explains_why(tdb):
    expire(tdb, {"user:alice": 2})
    expire(tdb, {"user:alice": 1})  # counts add up across sweeps
    st = status(tdb, "user:alice")
    assert (st.balance, st.reduced, st.quota_preoccupations, st.quota_golden_numbers) == (3, True, 2, 1)
    assert st.commits_to_restore == 1
    check(tdb, "user:alice", current_preoccupations=1, golden=True, current_golden=0)
    with pytest.raises(trust.QuotaExceeded) as exc:
        check(tdb, "user:alice", current_preoccupations=2, golden=False)
    detail = exc.value.detail
    assert "quota is 2" in detail and "reduced quota" in detail
    assert "3 of your pre-occupations expired" in detail and "each commit earns one back" in detail
    assert "after 1 more commit" in detail
    assert exc.value.extra["reduced"] is True and exc.value.extra["quota_preoccupations"] == 2
    with pytest.raises(trust.QuotaExceeded) as exc:
        check(tdb, "user:alice", current_preoccupations=0, golden=True, current_golden=1)
    assert exc.value.field == "number" and "golden" in exc.value.detail and "quota is 1" in exc.value.detail
    # someone else is not affected
    check(tdb, "user:bob", current_preoccupations=9, golden=True, current_golden=3)


def test_commits_restore_the_quota(tdb):
    expire(tdb, {"system:bss": 5})
    st = status(tdb, "system:bss")
    assert st.reduced and st.commits_to_restore == 3
    commit(tdb, "system:bss")
    commit(tdb, "system:bss")
    assert status(tdb, "system:bss").reduced  # balance 3: still at the threshold
    commit(tdb, "system:bss")
    st = status(tdb, "system:bss")
    assert (st.balance, st.committed, st.reduced, st.quota_preoccupations, st.commits_to_restore) == (2, 3, False, 10, 0)
    check(tdb, "system:bss", current_preoccupations=9, golden=False)
    commit(tdb, "system:bss", 10)  # the balance never goes below 0: no credit for the future
    assert status(tdb, "system:bss").balance == 0
    expire(tdb, {"system:bss": 3})
    assert status(tdb, "system:bss").reduced


def test_commit_before_any_expiry_and_bad_counts(tdb):
    from resource_mgr.security.principal import Principal
    from resource_mgr.states import Role

    who = Principal(name="user:new", roles=frozenset({Role.SALES}), local_network_ids=None)
    commit(tdb, who)
    st = status(tdb, who)
    assert (st.committed, st.balance, st.expired) == (1, 0, 0)
    with tdb.unit_of_work() as uow, pytest.raises(Invalid):
        trust.record_expirations(uow.session, {"user:x": -1})
    with tdb.unit_of_work() as uow, pytest.raises(Invalid):
        trust.record_commit(uow.session, "user:x", -2)
    assert status(tdb, "user:x").expired == 0


def test_admin_trust_endpoints(tdb):
    expire(tdb, {"user:alice": 4, "user:bob": 1})
    app = make_app(tdb, trust_expired_threshold=3, quota_reduced_preoccupations=2)
    _, admin = issue(tdb, ["admin"])
    _, sales = issue(tdb, ["sales"])
    client = app.test_client()
    listing = client.get("/api/v1/admin/trust", headers=bearer(admin))
    assert listing.status_code == 200 and listing.headers["X-Total-Count"] == "2"
    assert [r["principal"] for r in listing.json] == ["user:alice", "user:bob"]
    alice = listing.json[0]
    assert alice["reduced"] is True and alice["quota_preoccupations"] == 2 and alice["balance"] == 4
    assert alice["commits_to_restore"] == 2 and alice["last_expired_at"]
    reduced = client.get("/api/v1/admin/trust", query_string={"reduced": "true"}, headers=bearer(admin))
    assert [r["principal"] for r in reduced.json] == ["user:alice"]
    one = client.get("/api/v1/admin/trust/user:bob", headers=bearer(admin))
    assert one.status_code == 200 and one.json["reduced"] is False and one.json["quota_preoccupations"] == 200
    unknown = client.get("/api/v1/admin/trust/user:nobody", headers=bearer(admin))
    assert unknown.status_code == 200 and unknown.json["expired"] == 0
    assert client.get("/api/v1/admin/trust", headers=bearer(sales)).status_code == 403
