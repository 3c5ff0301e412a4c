"""Deterministic train/validation assignment by a hash of the *source record* id.

Hashing the record id (not the example id) keeps every example made from one record on the same
side (e.g. both translation directions of a pair), so validation never sees a training record.

The split is assigned once per build: `assign_split` sets the records' `split` column right after
dedup (build.py), before decontamination; decontamination, the teacher and format read that column
(docs/ARCHITECTURE.md). Only live rows get one: a row rejected earlier keeps a null split, which
nothing reads (rejects/ has no split column).
"""

from __future__ import annotations

import hashlib

import pyarrow as pa

from sft_ray import schema
from sft_ray.tags import live_mask

RESOLUTION = 1_000_000


def split_key(kind: str | None, record_id: str, text: str | None) -> str:
    """What decides a record's split: its id, except for QA, where every question about one passage
    goes to the same side (as SQuAD splits by article), else validation passages would make the
    training questions on them `contaminated` and leak the passage. Records without `text`
    (translation pairs) are split by id."""
    return f"passage\x00{text}" if kind == "qa" and text else record_id


def hashed_share(key: str, salt: str, seed: int) -> int:
    """A deterministic position of `key` in [0, RESOLUTION): "is it in the first share f" is
    `hashed_share(...) < f * RESOLUTION`, whatever the partitioning. Used for the split and the task mix."""
    h = hashlib.blake2b(f"{seed}\x00{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(h, "big") % RESOLUTION


def split_of(record_id: str, validation_fraction: float, seed: int) -> str:
    return schema.VALIDATION if hashed_share(record_id, "split", seed) < validation_fraction * RESOLUTION else schema.TRAIN


def assign_split(table: pa.Table, validation_fraction: float, seed: int) -> pa.Table:
    """Ray Data UDF: the `split` column (format.validation_fraction, format.seed) for the live rows, null for rejected ones."""
    schema.require_columns(table, [schema.ID, schema.KIND, schema.TEXT], "split")
    live = live_mask(table).to_pylist() if schema.REJECT_REASON in table.column_names else [True] * table.num_rows
    cols = zip(live, table[schema.KIND].to_pylist(), table[schema.ID].to_pylist(), table[schema.TEXT].to_pylist())
    splits = pa.array([split_of(split_key(k, i, t), validation_fraction, seed) if ok else None for ok, k, i, t in cols], pa.string())
    if schema.SPLIT in table.column_names:
        return table.set_column(table.schema.get_field_index(schema.SPLIT), schema.SPLIT, splits)
    return table.append_column(schema.SPLIT, splits)
