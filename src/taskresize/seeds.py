"""Seeds mixed from several integers (run seed, stream, epoch, index, rank), for draws that must not depend on
the order things ran in: a resumed run, or one with other worker counts, draws what the uninterrupted one drew."""

from __future__ import annotations

import hashlib


def item_seed(*parts: int) -> int:
    """A 63-bit seed mixed from integers (no two tuples of small integers share one, unlike ``seed + epoch``)."""
    digest = hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1
