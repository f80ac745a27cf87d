"""The faults' refusals, as the domain errors of resource_mgr.errors (problem+json codes)."""
from __future__ import annotations

from resource_mgr.errors import Conflict, NotFound


class UnknownDevice(NotFound):
    """No device of the caller's local networks has that name or management address; the
    problem body carries `close_names`, the nearest names, best first."""

    def __init__(self, device: str, close_names: list[str]) -> None:
        super().__init__(f"no device named or addressed {device!r}", field="device", close_names=close_names)


class UnknownPort(NotFound):
    def __init__(self, device: str, port: str, close_names: list[str]) -> None:
        super().__init__(f"device {device} has no port {port!r}", field="port", close_names=close_names)


class AlreadyCleared(Conflict):
    def __init__(self, fault_id: str, cleared_at: str) -> None:
        super().__init__(f"fault {fault_id} was cleared at {cleared_at}", field="id")
