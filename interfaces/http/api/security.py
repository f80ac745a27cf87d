"""Identities over HTTP: password login, token administration, trust-based limits.

- POST /api/v1/auth/token (public, rate limited per client address): username + password → a
  short-lived token (default 8 h, at most 24 h) with the user's roles and local networks, or a
  subset asked for; asking for more than the user holds is 403 `forbidden`.
- GET /api/v1/admin/tokens, GET /api/v1/admin/tokens/{id}, POST /api/v1/admin/tokens/{id}/revoke
  (admin): an admin limited to some local networks sees and revokes only tokens confined to them.
- GET /api/v1/admin/trust, GET /api/v1/admin/trust/{principal} (admin, auditor): expiry and commit
  counts, the current quotas and whether they are reduced (resource_mgr.security.trust). A caller
  limited to some local networks sees only principals confined to them (a user whose grants and
  tokens all are, a system whose tokens all are: services.principals_confined_to); any other
  principal's counters also count other networks' orders, so it is absent from the list and 404.
Every write is in the operation log (GET /api/v1/history) under the principal who made it.
"""
from __future__ import annotations

from typing import Any

from apiflask import APIBlueprint, Schema
from apiflask.fields import Boolean, Integer, List, String
from apiflask.validators import Length, OneOf, Range
from sqlalchemy import select

from resource_mgr.errors import NotFound
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.security import services, trust
from resource_mgr.security.models import ALL_NETWORKS, ApiToken
from resource_mgr.states import Role, TokenState

from interfaces.http.api.common import PageQuery
from interfaces.http.auth import public, require
from interfaces.http.context import principal, read_session, runtime, unit_of_work
from interfaces.http.limits import login_limit

bp = APIBlueprint("security", __name__)

ROLE_NAMES = sorted(r.value for r in Role)
TOKEN_STATES = [s.value for s in TokenState]


class LoginIn(Schema):
    username = String(required=True, validate=Length(1, 64))
    password = String(required=True, validate=Length(1, 1024))
    roles = List(String(validate=OneOf(ROLE_NAMES)), validate=Length(max=len(ROLE_NAMES)),
                 metadata={"description": "a subset of the user's roles (default: all of them)"})
    local_networks = List(String(validate=Length(1, 16)), validate=Length(max=500),
                          metadata={"description": "codes, or [\"*\"]; a subset of the user's (default: all)"})
    expires_in_minutes = Integer(load_default=services.LOGIN_TTL_DEFAULT_MINUTES,
                                 validate=Range(1, services.LOGIN_TTL_MAX_MINUTES))
    description = String(load_default="", validate=Length(max=200))


class TokenOut(Schema):
    id = String()
    prefix = String()
    principal = String()
    description = String()
    roles = List(String())
    local_networks = List(String())
    state = String(metadata={"enum": TOKEN_STATES})
    created_at = String(metadata={"format": "date-time"})
    expires_at = String(allow_none=True, metadata={"format": "date-time"})
    revoked_at = String(allow_none=True, metadata={"format": "date-time"})
    last_used_at = String(allow_none=True, metadata={"format": "date-time"})


class LoginOut(TokenOut):
    token = String(metadata={"description": "the bearer secret; shown once"})


class TokenQuery(PageQuery):
    principal = String(validate=Length(1, 100))
    state = String(validate=OneOf(TOKEN_STATES))


class TrustOut(Schema):
    principal = String()
    expired = Integer()
    committed = Integer()
    balance = Integer()
    threshold = Integer()
    reduced = Boolean()
    quota_preoccupations = Integer()
    quota_golden_numbers = Integer()
    commits_to_restore = Integer()
    last_expired_at = String(allow_none=True, metadata={"format": "date-time"})
    last_committed_at = String(allow_none=True, metadata={"format": "date-time"})


class TrustQuery(PageQuery):
    reduced = Boolean()


@bp.post("/auth/token")
@bp.input(LoginIn, arg_name="body")
@bp.output(LoginOut, status_code=201)
@bp.doc(summary="Log in: a short-lived token for a user", responses=[401, 403, 422, 429])
@public
@login_limit
def login(body: dict[str, Any]):
    with runtime().db.unit_of_work(principal=f"user:{body['username']}") as uow:
        token, secret = services.login(uow.session, username=body["username"], password=body["password"],
                                       roles=body.get("roles"), local_networks=body.get("local_networks"),
                                       expires_in_minutes=body["expires_in_minutes"],
                                       description=body["description"])
        uow.commit()
        return {**services.token_view(token), "token": secret}, 201


def _scope_codes(session: Any) -> set[str] | None:
    """The local-network codes the caller may administer; None = all. (Inside a unit of work, pass
    its session: on SQLite a second session would wait for the unit of work's write lock.)"""
    ids = principal().local_network_ids
    if ids is None:
        return None
    return set(session.scalars(select(LocalNetwork.code).where(LocalNetwork.id.in_(sorted(ids)))))


def _in_scope(token: ApiToken, codes: set[str] | None) -> bool:
    if codes is None:
        return True
    return ALL_NETWORKS not in token.local_networks and set(token.local_networks) <= codes


@bp.get("/admin/tokens")
@bp.input(TokenQuery, location="query", arg_name="query")
@bp.output(TokenOut(many=True))
@bp.doc(summary="Tokens (never their secrets), newest first; total in X-Total-Count")
@require(Role.ADMIN)
def list_tokens(query: dict[str, Any]):
    codes = _scope_codes(read_session())
    tokens = [t for t in services.list_tokens(read_session(), principal=query.get("principal"),
                                              state=query.get("state")) if _in_scope(t, codes)]
    page = tokens[query["offset"]:query["offset"] + query["limit"]]
    return [services.token_view(t) for t in page], 200, {"X-Total-Count": str(len(tokens))}


def _token_or_404(session: Any, token_id: str) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or not _in_scope(token, _scope_codes(session)):
        raise NotFound(f"no token with id {token_id}", field="token_id")
    return token


@bp.get("/admin/tokens/<string:token_id>")
@bp.output(TokenOut)
@bp.doc(summary="One token", responses=[404])
@require(Role.ADMIN)
def get_token(token_id: str):
    return services.token_view(_token_or_404(read_session(), token_id))


@bp.post("/admin/tokens/<string:token_id>/revoke")
@bp.output(TokenOut)
@bp.doc(summary="Revoke a token at once (idempotent)", responses=[404])
@require(Role.ADMIN)
def revoke_token(token_id: str):
    with unit_of_work() as uow:
        _token_or_404(uow.session, token_id)
        token = services.revoke_token_audited(uow.session, principal(), token_id)
        uow.commit()
        return services.token_view(token)


@bp.get("/admin/trust")
@bp.input(TrustQuery, location="query", arg_name="query")
@bp.output(TrustOut(many=True))
@bp.doc(summary="Trust-based limits of every principal with history, most expiries first")
@require(Role.ADMIN, Role.AUDITOR)
def list_trust(query: dict[str, Any]):
    session = read_session()
    rows = trust.list_status(session, runtime().settings, reduced_only=bool(query.get("reduced")))
    codes = _scope_codes(session)
    if codes is not None:
        confined = services.principals_confined_to(session, codes, [r.principal for r in rows])
        rows = [r for r in rows if r.principal in confined]
    page = rows[query["offset"]:query["offset"] + query["limit"]]
    return [r.as_dict() for r in page], 200, {"X-Total-Count": str(len(rows))}


@bp.get("/admin/trust/<string:name>")
@bp.output(TrustOut)
@bp.doc(summary="Trust-based limits of one principal (e.g. user:alice, system:bss)", responses=[404])
@require(Role.ADMIN, Role.AUDITOR)
def get_trust(name: str):
    session = read_session()
    name = name[:100]
    codes = _scope_codes(session)
    if codes is not None and name not in services.principals_confined_to(session, codes, [name]):
        raise NotFound(f"no principal {name} confined to your local networks", field="name")
    return trust.status(session, name, runtime().settings).as_dict()
