"""Identities: users (passwords hashed with argon2) and bearer tokens for users and client
systems (BSS, IOM, network management). Roles and local-network scope are granted to a user and
carried by each token."""
from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from resource_mgr.clock import utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.ids import new_id

ALL_NETWORKS = "*"


class User(Base):
    __tablename__ = "app_user"
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100), default="")
    password_hash: Mapped[str] = mapped_column(String(200))
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    local_networks: Mapped[list[str]] = mapped_column(JSON, default=list)  # codes, or ["*"]
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token. Only its SHA-256 is stored; the secret is shown once at creation."""

    __tablename__ = "api_token"
    __table_args__ = (Index("ix_api_token_principal", "principal"),)
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))  # first characters, to recognise it in lists
    principal: Mapped[str] = mapped_column(String(100))  # "user:alice" or "system:bss"
    user_id: Mapped[str | None] = mapped_column(ForeignKey("app_user.id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(String(200), default="")
    roles: Mapped[list[str]] = mapped_column(JSON, default=list)
    local_networks: Mapped[list[str]] = mapped_column(JSON, default=list)  # codes, or ["*"]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    user: Mapped[User | None] = relationship()


class PrincipalTrust(Base):
    """How far a principal can be trusted with pre-occupations (see resource_mgr.security.trust).

    `expired` and `committed` are lifetime counters; `balance` is the expiries not yet earned
    back: +1 per pre-occupation that expired uncommitted, -1 per commit (never below 0)."""

    __tablename__ = "principal_trust"
    principal: Mapped[str] = mapped_column(String(100), primary_key=True)  # "user:alice", "system:bss"
    expired: Mapped[int] = mapped_column(Integer, default=0)
    committed: Mapped[int] = mapped_column(Integer, default=0)
    balance: Mapped[int] = mapped_column(Integer, default=0)
    last_expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_committed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
