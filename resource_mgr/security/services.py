"""Users and tokens: create, authenticate, expire, revoke."""
from __future__ import annotations

import hashlib
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import or_, select, update
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from resource_mgr.clock import aware, utcnow
from resource_mgr.db import Database
from resource_mgr.errors import Conflict, Invalid, NotFound, Unauthorized
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.security.models import ALL_NETWORKS, ApiToken, User
from resource_mgr.security.principal import Principal
from resource_mgr.states import Role, TokenState

log = logging.getLogger("rmgr.security")

TOKEN_PREFIX = "rmgr_"
_hasher = PasswordHasher()
SYSTEMS = ("bss", "iom", "nms", "mss")


def _hash_token(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def _check_roles(roles: list[str]) -> list[str]:
    if not roles:
        raise Invalid("at least one role is needed", field="roles")
    known = {r.value for r in Role}
    bad = [r for r in roles if r not in known]
    if bad:
        raise Invalid(f"unknown role {bad[0]!r}; known: {', '.join(sorted(known))}", field="roles")
    return sorted(set(roles))


def _check_networks(session: Session, codes: list[str]) -> list[str]:
    if not codes:
        raise Invalid("at least one local network (or * for all) is needed", field="local_networks")
    if ALL_NETWORKS in codes:
        return [ALL_NETWORKS]
    found = set(session.scalars(select(LocalNetwork.code).where(LocalNetwork.code.in_(codes))))
    missing = [c for c in codes if c not in found]
    if missing:
        raise Invalid(f"unknown local network {missing[0]!r}", field="local_networks")
    return sorted(set(codes))


def create_user(session: Session, *, username: str, password: str, roles: list[str],
                local_networks: list[str], display_name: str = "") -> User:
    if not re.fullmatch(r"[a-z0-9_.-]{2,64}", username or ""):
        raise Invalid("username must be 2–64 lower-case letters, digits, _ . -", field="username")
    if len(password or "") < 10:
        raise Invalid("password must be at least 10 characters", field="password")
    if session.scalar(select(User.id).where(User.username == username)):
        raise Conflict(f"user {username} already exists", field="username")
    user = User(username=username, display_name=display_name, password_hash=_hasher.hash(password),
                roles=_check_roles(roles), local_networks=_check_networks(session, local_networks))
    session.add(user)
    session.flush()
    return user


_DUMMY_HASH = _hasher.hash("not-a-password-of-anyone")


def authenticate_user(session: Session, username: str, password: str) -> User:
    """The user, or Unauthorized. An unknown user costs the same hashing time as a wrong password;
    a disabled account is named only to someone who knows its password."""
    user = session.scalar(select(User).where(User.username == username))
    try:
        _hasher.verify(user.password_hash if user is not None else _DUMMY_HASH, password or "")
    except (VerificationError, InvalidHashError):
        raise Unauthorized("unknown user or wrong password") from None
    if user is None:
        raise Unauthorized("unknown user or wrong password")
    if not user.active:
        raise Unauthorized(f"user {username} is disabled")
    return user


def create_token(session: Session, *, roles: list[str], local_networks: list[str], user: str | None = None,
                 system: str | None = None, expires_at: datetime | None = None, description: str = "") -> tuple[ApiToken, str]:
    """A new bearer token for a user (within the user's own grants) or a client system.
    Returns the record and the secret, which is not stored and cannot be shown again."""
    if bool(user) == bool(system):
        raise Invalid("a token is for exactly one of a user or a system", field="user")
    if expires_at is not None and aware(expires_at) <= utcnow():
        raise Invalid("expires_at must be in the future", field="expires_at")
    roles = _check_roles(roles)
    networks = _check_networks(session, local_networks)
    owner = None
    if user:
        owner = session.scalar(select(User).where(User.username == user))
        if owner is None:
            raise Invalid(f"unknown user {user!r}", field="user")
        beyond = set(roles) - set(owner.roles)
        if beyond:
            raise Invalid(f"user {user} does not hold role {sorted(beyond)[0]}", field="roles")
        if ALL_NETWORKS not in owner.local_networks and (
                ALL_NETWORKS in networks or set(networks) - set(owner.local_networks)):
            raise Invalid(f"user {user} may not touch all of {', '.join(networks)}", field="local_networks")
        principal = f"user:{user}"
    else:
        if system not in SYSTEMS:
            raise Invalid(f"system must be one of {', '.join(SYSTEMS)}", field="system")
        principal = f"system:{system}"
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(token_hash=_hash_token(secret), prefix=secret[:12], principal=principal,
                     user_id=owner.id if owner else None, roles=roles, local_networks=networks,
                     expires_at=expires_at, description=description)
    session.add(token)
    session.flush()
    return token, secret


def revoke_token(session: Session, token_id: str) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None:
        raise NotFound(f"no token with id {token_id}", field="token_id")
    if token.revoked_at is None:
        token.revoked_at = utcnow()
    TOKENS.forget(token_id=token_id)  # refused at once in this process, in the others within the TTL
    return token


def principal_for_token(session: Session, secret: str) -> Principal:
    """The principal behind a bearer token, or Unauthorized saying why (unknown, expired, revoked)."""
    return authenticate_token(session, secret)[0]


def authenticate_token(session: Session, secret: str) -> tuple[Principal, datetime | None]:
    """The principal behind a bearer token and when the token was last recorded as used (for
    `record_token_use`), or Unauthorized saying why (unknown, expired, revoked, user disabled)."""
    token, principal = _authenticate(session, secret)
    return principal, token.last_used_at


def _authenticate(session: Session, secret: str) -> tuple[ApiToken, Principal]:
    token = session.scalar(select(ApiToken).where(ApiToken.token_hash == _hash_token(secret)))
    now = utcnow()
    if token is None:
        raise Unauthorized("unknown token")
    if token.revoked_at is not None:
        raise Unauthorized("this token was revoked")
    if token.expires_at is not None and aware(token.expires_at) <= now:
        raise Unauthorized("this token has expired")
    if token.user is not None and not token.user.active:
        raise Unauthorized("the user of this token is disabled")
    if ALL_NETWORKS in token.local_networks:
        networks = None
    else:
        networks = frozenset(session.scalars(select(LocalNetwork.id).where(LocalNetwork.code.in_(token.local_networks))))
    return token, Principal(name=token.principal, roles=frozenset(Role(r) for r in token.roles),
                            local_network_ids=networks, token_id=token.id)


# -- the per-process cache of token → principal ------------------------------------------------

@dataclass
class _Cached:
    principal: Principal
    expires_at: datetime | None
    user_id: str | None
    last_used_at: datetime | None
    until: float  # time.monotonic() past which the database is asked again


class TokenCache:
    """Bearer token → principal, per process, for `ttl` seconds: an API call costs no database
    round trip to authenticate. What it keeps is checked again at every use where it can change
    without the database: the expiry (against the clock). What can only change in the database —
    revocation, a user disabled, the token's grants — is seen within the TTL in every process, and
    at once in the process that revoked or disabled it (`forget`). Unknown or refused tokens are
    never kept (guessing fills nothing); at most `MAX_ENTRIES`, the least recently used go first."""

    MAX_ENTRIES = 10_000

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[tuple[str, str], _Cached] = OrderedDict()

    def get(self, scope: str, digest: str) -> _Cached | None:
        key = (scope, digest)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            if entry.until <= time.monotonic():
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, scope: str, digest: str, entry: _Cached) -> None:
        with self._lock:
            self._entries[(scope, digest)] = entry
            self._entries.move_to_end((scope, digest))
            while len(self._entries) > self.MAX_ENTRIES:
                self._entries.popitem(last=False)

    def forget(self, *, token_id: str | None = None, user_id: str | None = None) -> None:
        with self._lock:
            for key in [k for k, e in self._entries.items()
                        if (token_id is not None and e.principal.token_id == token_id)
                        or (user_id is not None and e.user_id == user_id)]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


TOKENS = TokenCache()


def resolve_token(database: Database, secret: str, ttl_seconds: float) -> tuple[Principal, datetime | None]:
    """`authenticate_token` through the process's `TOKENS` cache (`ttl_seconds` 0: not cached).
    Returns the principal and when the token was last recorded as used (`record_token_use`)."""
    digest = _hash_token(secret)
    if ttl_seconds > 0:
        entry = TOKENS.get(database.url, digest)
        if entry is not None:
            if entry.expires_at is not None and aware(entry.expires_at) <= utcnow():
                raise Unauthorized("this token has expired")
            return entry.principal, entry.last_used_at
    with database.read_session() as session:
        token, principal = _authenticate(session, secret)
        last_used_at = token.last_used_at
        if ttl_seconds > 0:
            TOKENS.put(database.url, digest, _Cached(principal, token.expires_at, token.user_id, last_used_at,
                                                      time.monotonic() + ttl_seconds))
        session.commit()
    return principal, last_used_at


def token_use_recorded(database: Database, secret: str, at: datetime) -> None:
    """The cached token's use was recorded (or tried) at `at`: no write for another minute."""
    entry = TOKENS.get(database.url, _hash_token(secret))
    if entry is not None:
        entry.last_used_at = at


TOKEN_USE_RESOLUTION = timedelta(minutes=1)


def record_token_use(database: Database, token_id: str, last_used_at: datetime | None,
                     now: datetime | None = None) -> bool:
    """Write the token's last_used_at when the one read at authentication is a minute old or more
    (so at most once a minute per token, and a request whose token was recorded recently writes
    nothing). Its own short transaction, after the read; it never waits for a lock: on SQLite a
    busy write lock (an import, a sweep), on PostgreSQL a row lock held over 100 ms, skips the
    write, which the next request after that tries again. Returns whether the use is now recorded
    within the minute (written by this call, or found recent: another process wrote it), False
    when the lock made it skip the write."""
    now = now or utcnow()
    if last_used_at is not None and now - aware(last_used_at) < TOKEN_USE_RESOLUTION:
        return True
    stale = or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - TOKEN_USE_RESOLUTION)
    stmt = update(ApiToken).where(ApiToken.id == token_id, stale).values(last_used_at=now)
    sqlite = database.dialect == "sqlite"
    try:
        with database.engine.connect() as conn:
            raw = conn.connection.driver_connection
            busy = raw.execute("PRAGMA busy_timeout").fetchone()[0] if sqlite else None
            if sqlite:
                raw.execute("PRAGMA busy_timeout=0")
            try:
                with conn.begin():
                    if not sqlite:
                        conn.exec_driver_sql("SET LOCAL lock_timeout = '100ms'")
                    conn.execute(stmt.execution_options(synchronize_session=False))
                    return True
            finally:
                if sqlite:
                    raw.execute(f"PRAGMA busy_timeout={int(busy)}")
    except OperationalError as exc:  # locked: the next request records it
        log.debug("token %s: last_used_at not written now (%s)", token_id, exc.orig)
        return False


def principals_confined_to(session: Session, codes: set[str], names: list[str] | None = None) -> set[str]:
    """The principal names (of `names`, or of everyone) whose every grant lies within the local
    networks `codes`: a user whose own networks and every token are within them, a system or other
    principal whose every token is. A principal known by no user and no token (e.g. "cli:root"),
    or holding a grant for all networks, is confined to nothing narrower than all. Used to scope
    what an administrator of some local networks sees of per-principal data (trust counters)."""
    grants: dict[str, list[list[str]]] = {}
    tokens = select(ApiToken.principal, ApiToken.local_networks)
    users = select(User.username, User.local_networks)
    if names is not None:
        tokens = tokens.where(ApiToken.principal.in_(names))
        users = users.where(User.username.in_([n[len("user:"):] for n in names if n.startswith("user:")]))
    for name, networks in session.execute(tokens):
        grants.setdefault(name, []).append(list(networks or []))
    for username, networks in session.execute(users):
        grants.setdefault(f"user:{username}", []).append(list(networks or []))
    return {name for name, lists in grants.items()
            if all(nets and ALL_NETWORKS not in nets and set(nets) <= codes for nets in lists)}


# -- audited operations (the CLI and the HTTP admin endpoints use these) ---------------------

def _token_network_id(session: Session, codes: list[str]) -> str | None:
    """The local network a token event is logged under: its only network, else None (then only
    principals with every local network see it in the operation log)."""
    if len(codes) != 1 or codes[0] == ALL_NETWORKS:
        return None
    return session.scalar(select(LocalNetwork.id).where(LocalNetwork.code == codes[0]))


def token_view(token: ApiToken) -> dict[str, object]:
    """What may be shown about a token: never its hash or secret."""
    now = utcnow()
    state = (TokenState.REVOKED if token.revoked_at is not None else
             TokenState.EXPIRED if token.expires_at is not None and aware(token.expires_at) <= now else
             TokenState.ACTIVE).value
    iso = lambda v: aware(v).isoformat() if v else None  # noqa: E731
    return {"id": token.id, "prefix": token.prefix, "principal": token.principal, "description": token.description,
            "roles": list(token.roles), "local_networks": list(token.local_networks), "state": state,
            "created_at": iso(token.created_at), "expires_at": iso(token.expires_at),
            "revoked_at": iso(token.revoked_at), "last_used_at": iso(token.last_used_at)}


def create_user_audited(session: Session, actor: Principal | str, **kwargs: object) -> User:
    from resource_mgr.security import audit

    user = create_user(session, **kwargs)  # type: ignore[arg-type]
    audit.record(session, actor, resource_id=user.id, resource_kind="user", action="user_create",
                 local_network_id=_token_network_id(session, user.local_networks), before={},
                 after={"username": user.username, "roles": user.roles, "local_networks": user.local_networks,
                        "active": True})
    return user


def set_user_active(session: Session, actor: Principal | str, username: str, active: bool) -> User:
    """Disable (or enable again) a user: a disabled user's tokens stop working at once."""
    from resource_mgr.security import audit

    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        raise NotFound(f"no user {username}", field="username")
    before = {"active": user.active}
    user.active = active
    TOKENS.forget(user_id=user.id)
    audit.record(session, actor, resource_id=user.id, resource_kind="user",
                 action="user_enable" if active else "user_disable",
                 local_network_id=_token_network_id(session, user.local_networks), before=before,
                 after={"active": active, "username": username})
    return user


def create_token_audited(session: Session, actor: Principal | str, **kwargs: object) -> tuple[ApiToken, str]:
    from resource_mgr.security import audit

    token, secret = create_token(session, **kwargs)  # type: ignore[arg-type]
    audit.record(session, actor, resource_id=token.id, resource_kind="api_token", action="token_create",
                 local_network_id=_token_network_id(session, token.local_networks), before={},
                 after={k: v for k, v in token_view(token).items() if k in
                        ("principal", "prefix", "roles", "local_networks", "expires_at", "description")})
    return token, secret


def revoke_token_audited(session: Session, actor: Principal | str, token_id: str) -> ApiToken:
    from resource_mgr.security import audit

    token = session.get(ApiToken, token_id)
    was = token_view(token)["state"] if token is not None else None
    token = revoke_token(session, token_id)
    audit.record(session, actor, resource_id=token.id, resource_kind="api_token", action="token_revoke",
                 local_network_id=_token_network_id(session, token.local_networks), before={"state": was},
                 after={"state": TokenState.REVOKED.value, "principal": token.principal, "prefix": token.prefix})
    return token


def list_tokens(session: Session, *, principal: str | None = None, state: str | None = None) -> list[ApiToken]:
    stmt = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    if principal:
        stmt = stmt.where(ApiToken.principal == principal)
    tokens = list(session.scalars(stmt))
    if state:
        tokens = [t for t in tokens if token_view(t)["state"] == state]
    return tokens


LOGIN_TTL_DEFAULT_MINUTES = 8 * 60
LOGIN_TTL_MAX_MINUTES = 24 * 60


def login(session: Session, *, username: str, password: str, roles: list[str] | None = None,
          local_networks: list[str] | None = None, expires_in_minutes: int = LOGIN_TTL_DEFAULT_MINUTES,
          description: str = "") -> tuple[ApiToken, str]:
    """Password → a short-lived token for that user, with the user's roles and local networks or a
    subset of them. Asking for more than the user holds is Forbidden (403), not silently trimmed."""
    from datetime import timedelta

    from resource_mgr.errors import Forbidden

    user = authenticate_user(session, username, password)
    if not 1 <= expires_in_minutes <= LOGIN_TTL_MAX_MINUTES:
        raise Invalid(f"expires_in_minutes must be 1–{LOGIN_TTL_MAX_MINUTES}", field="expires_in_minutes")
    roles = list(roles or user.roles)
    networks = list(local_networks or user.local_networks)
    beyond = sorted(set(roles) - set(user.roles))
    if beyond:
        raise Forbidden(f"user {username} does not hold role {beyond[0]}; it holds "
                        f"{', '.join(user.roles) or 'none'}", field="roles")
    if ALL_NETWORKS not in user.local_networks and (ALL_NETWORKS in networks
                                                    or set(networks) - set(user.local_networks)):
        raise Forbidden(f"user {username} may touch only {', '.join(user.local_networks)}", field="local_networks")
    return create_token_audited(session, f"user:{username}", roles=roles, local_networks=networks, user=username,
                                expires_at=utcnow() + timedelta(minutes=expires_in_minutes),
                                description=description or "login")
