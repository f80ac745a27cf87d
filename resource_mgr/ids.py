"""Opaque, time-ordered identifiers made in process (ULID layout, Crockford base32).

Made here rather than by the database so that bulk import can write rows without reading back
generated keys, and so every resource and unit shares one id space (`GET /resources/{id}`).
Monotonic within a process: ids made in the same millisecond still sort in creation order, so
ports created slot by slot list in slot order and inserts stay at the end of the index."""
from __future__ import annotations

import os
import threading
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_lock = threading.Lock()
_last = 0


def new_id() -> str:
    global _last
    candidate = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    with _lock:
        value = _last = max(candidate, _last + 1)
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
