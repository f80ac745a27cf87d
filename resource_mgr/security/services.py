"""Users and tokens: create, authenticate, expire, revoke."""
from __future__ import annotations

import hashlib
import re
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from resource_mgr.clock import aware, utcnow
from resource_mgr.errors import Conflict, Invalid, NotFound, Unauthorized
from resource_mgr.inventory.models import LocalNetwork
from resource_mgr.security.models import ALL_NETWORKS, ApiToken, User
from resource_mgr.security.principal import Principal
from resource_mgr.states import Role

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


def authenticate_user(session: Session, username: str, password: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    try:
        if user is None or not user.active or not _hasher.verify(user.password_hash, password):
            raise Unauthorized("unknown user or wrong password")
    except (VerificationError, InvalidHashError):
        raise Unauthorized("unknown user or wrong password") from None
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
    return token


def principal_for_token(session: Session, secret: str) -> Principal:
    """The principal behind a bearer token, or Unauthorized saying why (unknown, expired, revoked)."""
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
    return Principal(name=token.principal, roles=frozenset(Role(r) for r in token.roles),
                     local_network_ids=networks, token_id=token.id)
