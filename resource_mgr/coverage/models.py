"""A stored service qualification (TMF645 checkServiceQualification): what was asked and what
was answered, so the caller can read it again by id or list its own."""
from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from resource_mgr.clock import utcnow
from resource_mgr.db import Base, UTCDateTime
from resource_mgr.ids import new_id


class ServiceQualification(Base):
    __tablename__ = "service_qualification"
    __table_args__ = (Index("ix_service_qualification_principal_created_at", "principal", "created_at"),)
    id: Mapped[str] = mapped_column(String(26), primary_key=True, default=new_id)
    principal: Mapped[str] = mapped_column(String(100))  # who asked: only they read it again
    # The local network of the places qualified (the first one); None when no place resolved.
    local_network_id: Mapped[str | None] = mapped_column(ForeignKey("local_network.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    request: Mapped[dict[str, Any]] = mapped_column(JSON)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
