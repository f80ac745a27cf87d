"""Opaque, time-ordered identifiers made in process (ULID layout, Crockford base32).

Made here rather than by the database so that bulk import can write rows without reading back
generated keys, and so every resource and unit shares one id space (`GET /resources/{id}`)."""
from __future__ import annotations

import os
import time

_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def new_id() -> str:
    value = (int(time.time() * 1000) << 80) | int.from_bytes(os.urandom(10), "big")
    chars = []
    for _ in range(26):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))
