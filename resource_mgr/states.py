"""Every status in the system, in one place."""
from __future__ import annotations

from enum import StrEnum


class Occupancy(StrEnum):
    FREE = "free"
    PREOCCUPIED = "preoccupied"  # 預占: held for an order until an expiry
    OCCUPIED = "occupied"  # 實占: serving a service


class AdminState(StrEnum):
    IN_SERVICE = "in_service"
    LOCKED = "locked"  # 封鎖 by a cutover: nothing new may land on it
    FAULTY = "faulty"
    RESERVED = "reserved"  # 預留 for planning


class ResourceStatus(StrEnum):
    """A resource's (a device, a box, a cable ...) place in its life: its units have their own."""
    IN_SERVICE = "in_service"
    PLANNED = "planned"
    RETIRED = "retired"


class TokenState(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ReservationState(StrEnum):
    PREOCCUPIED = "preoccupied"
    COMMITTED = "committed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


class ServiceState(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    REMOVED = "removed"


class CutoverState(StrEnum):
    DRAFT = "draft"
    LOCKED = "locked"
    APPLYING = "applying"
    APPLIED = "applied"
    FAILED = "failed"
    ROLLED_BACK = "rolled_back"
    CANCELLED = "cancelled"


class JobState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class CustomerGrade(StrEnum):
    NORMAL = "normal"
    VIP = "vip"
    MAJOR_ACCOUNT = "major_account"


class Technology(StrEnum):
    FTTH = "FTTH"
    ADSL = "ADSL"
    VDSL = "VDSL"
    POTS = "POTS"
    LAN = "LAN"


class Product(StrEnum):
    FTTH_BROADBAND = "ftth_broadband"
    ADSL_BROADBAND = "adsl_broadband"
    VDSL_BROADBAND = "vdsl_broadband"
    LAN_BROADBAND = "lan_broadband"
    POTS = "pots"
    NGN_PHONE = "ngn_phone"
    IPTV = "iptv"
    VOIP = "voip"


class Role(StrEnum):
    SALES = "sales"
    DISPATCH = "dispatch"
    MAINTENANCE = "maintenance"
    PLANNER = "planner"
    ADMIN = "admin"
    AUDITOR = "auditor"


class DeliveryState(StrEnum):
    """An event's delivery to one subscription (resource_mgr/events)."""
    PENDING = "pending"  # not acknowledged yet: due at next_attempt_at
    DELIVERED = "delivered"  # a 2xx acknowledged it
    FAILED = "failed"  # given up after the last attempt (attempts or give-up time used)
