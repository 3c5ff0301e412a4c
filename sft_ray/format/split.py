"""Deterministic train/validation assignment by a hash of the *source record* id.

Hashing the record id (not the example id) keeps every example made from one record on the same
side (e.g. both translation directions of a pair), so validation never sees a training record.
"""

from __future__ import annotations

import hashlib

RESOLUTION = 1_000_000


def split_key(kind: str | None, record_id: str, text: str | None) -> str:
    """What decides a record's split: its id, except for QA, where every question about one passage
    goes to the same side (as SQuAD splits by article), else validation passages would make the
    training questions on them `contaminated` and leak the passage."""
    return f"passage\x00{text}" if kind == "qa" and text else record_id


def hashed_share(key: str, salt: str, seed: int) -> int:
    """A deterministic position of `key` in [0, RESOLUTION): "is it in the first share f" is
    `hashed_share(...) < f * RESOLUTION`, whatever the partitioning. Used for the split and the task mix."""
    h = hashlib.blake2b(f"{seed}\x00{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") % RESOLUTION


def split_of(record_id: str, validation_fraction: float, seed: int) -> str:
    return "validation" if hashed_share(record_id, "split", seed) < validation_fraction * RESOLUTION else "train"
