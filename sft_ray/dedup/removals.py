"""Removal lists: what dedup decided, written per staging unit and applied by a map (no record shuffle).

Exact and near dedup never move records. They read keys (content hashes, band keys) with each
record's integer row id, shuffle only those, and produce a *removal list*: one row per record that
loses (row id, reason, duplicate_of, and a new id where the record's own id must change). The list
is grouped by staging unit (the row id's high 32 bits, `ROW`) and written as one Parquet file per
unit under the step's folder; the records are then tagged by a map that reads, for each block, the
removal files of the units its rows came from. Bytes shuffled per record are therefore the key
(16-120 bytes), not the text, and the largest task holds one hash partition of keys or one unit's
removals (docs/ARCHITECTURE.md, "Scale").

Row ids: `unit ordinal << 32 | row within the unit`, set when a unit is read + cleaned
(staging.py); a Dataset without them (a stage called on its own, in tests) gets them from its
block order (`with_row_ids`). They are join keys only: which record survives is still decided by
the smallest record id (principle 4), so row ids never change results.

Each step's folder gets a marker `_DONE` last (with the step's fingerprint: the dedup config and
the staged units): a build that is rerun after a driver death reuses every finished step.
"""

from __future__ import annotations

import functools
import json
import logging
import tempfile
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from sft_ray import schema
from sft_ray import storage
from sft_ray.placement import task_options
from sft_ray.tags import set_columns, tag
from sft_ray.dedup.partitions import by_key

log = logging.getLogger("sft_ray")

ROW = "_row"  # int64 row id, inside dedup only: staged Parquet carries it, curated/ does not
UNIT_BITS = 32
NEW_ID = "new_id"
REMOVAL_SCHEMA = pa.schema([pa.field(ROW, pa.int64()), pa.field(schema.REJECT_REASON, pa.string()),
                            pa.field(schema.DUPLICATE_OF, pa.string()), pa.field(NEW_ID, pa.string())])
DONE = "_DONE"
_UNIT = "removal_unit"


def removal_table(rows: np.ndarray, reason: str, duplicate_of, new_id=None) -> pa.Table:
    n = len(rows)
    return pa.Table.from_arrays(
        [pa.array(rows, pa.int64()), pa.array([reason] * n, pa.string()), pa.array(duplicate_of, pa.string()),
         pa.array(new_id if new_id is not None else [None] * n, pa.string())], schema=REMOVAL_SCHEMA)


# ------------------------------------------------------------------------------------ row ids
@ray.remote
def _number_block(table: pa.Table, ordinal: int) -> pa.Table:
    return table.append_column(ROW, pa.array((ordinal << UNIT_BITS) + np.arange(table.num_rows, dtype=np.int64)))


def with_row_ids(ds: ray.data.Dataset) -> ray.data.Dataset:
    """`ds` with a `ROW` column: its own when present, else block ordinal << 32 | row in the block.
    Materialises `ds` (its blocks must stay the same between the passes that read the ids)."""
    if ROW in ds.schema().names:
        return ds
    refs = ds.materialize().to_arrow_refs()
    return ray.data.from_arrow_refs([_number_block.options(**task_options()).remote(r, i) for i, r in enumerate(refs)])


# ------------------------------------------------------------------------------------ steps
class Step:
    """One dedup step's folder: per-unit removal files and the `_DONE` marker with a fingerprint."""

    def __init__(self, root: str, name: str, storage_options: dict, fingerprint: str):
        self.dir = storage.join(root, name)
        self.name, self.storage_options, self.fingerprint = name, storage_options, fingerprint

    def done(self) -> dict | None:
        """The marker's content when this step finished for the same fingerprint, else None."""
        url = storage.join(self.dir, DONE)
        if not storage.exists(url, self.storage_options):
            return None
        info = storage.read_json(url, self.storage_options)
        return info if info.get("fingerprint") == self.fingerprint else None

    def write(self, removals: ray.data.Dataset, num_partitions: int) -> dict:
        """Group the removal list by unit (a shuffle of removal rows only), one file per unit, then
        the marker. A retried task rewrites the same unit's file: each unit is in one partition."""
        storage.remove(self.dir, self.storage_options)
        with_unit = removals.map_batches(_add_unit, batch_format="pyarrow")
        parts = by_key(with_unit, num_partitions, [_UNIT])
        written = parts.map_batches(_write_units, batch_format="pyarrow", batch_size=None,
                                    fn_kwargs={"root": self.dir, "storage_options": self.storage_options})
        counts = written.materialize()  # one execution; its count and rows are then metadata and stored blocks
        rows = counts.to_pandas()["rows"] if counts.count() else []
        info = {"fingerprint": self.fingerprint, "removed": int(sum(rows)), "units": len(rows)}
        storage.write_json(storage.join(self.dir, DONE), info, self.storage_options)
        return info


def _add_unit(table: pa.Table) -> pa.Table:
    return table.append_column(_UNIT, pc.shift_right(table[ROW], UNIT_BITS))


def _write_units(part: pa.Table, root: str, storage_options: dict) -> pa.Table:
    out = {"unit": [], "rows": []}
    if part.num_rows:
        part = part.sort_by([(_UNIT, "ascending"), (ROW, "ascending")])
        units = part[_UNIT].to_numpy()
        starts = np.flatnonzero(np.r_[True, units[1:] != units[:-1]])
        for a, b in zip(starts, np.r_[starts[1:], len(units)]):
            unit = int(units[a])
            fs, path = storage.get_fs(storage.join(root, f"{unit}.parquet"), storage_options)
            fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
            with fs.open(path, "wb") as f:
                pq.write_table(part.slice(a, b - a).drop_columns([_UNIT]), f)
            out["unit"].append(unit)
            out["rows"].append(int(b - a))
    return pa.table({"unit": pa.array(out["unit"], pa.int64()), "rows": pa.array(out["rows"], pa.int64())})


# ------------------------------------------------------------------------------------ apply
@functools.lru_cache(maxsize=64)
def _unit_removals(root: str, unit: int, storage_options_json: str, nonce: str) -> pa.Table | None:
    """One unit's removal file (cached per worker: a block of the unit meets it once; `nonce` is
    per apply, so a rewritten folder is never served from an earlier run's cache)."""
    url = storage.join(root, f"{unit}.parquet")
    storage_options = json.loads(storage_options_json)
    if not storage.exists(url, storage_options):
        return None
    fs, path = storage.get_fs(url, storage_options)
    with fs.open(path, "rb") as f:
        return pq.read_table(f)


def apply_block(table: pa.Table, roots: list[str], stage: str, storage_options_json: str, nonce: str) -> pa.Table:
    """Tag the block's rows named by the removal files of its units (`roots`: step folders, in
    order: the first to name a row wins, as tags keep the first reject). New ids replace old ones."""
    if table.num_rows == 0:
        return table
    rows = table[ROW].combine_chunks()
    units = np.unique(pc.shift_right(rows, UNIT_BITS).to_numpy())
    for root in roots:
        found = [t for u in units.tolist() if (t := _unit_removals(root, u, storage_options_json, nonce)) is not None]
        if not found:
            continue
        rem = pa.concat_tables(found)
        idx = pc.index_in(rows, value_set=rem[ROW].combine_chunks())
        reasons = pc.take(rem[schema.REJECT_REASON], idx)
        table = tag(table, stage, reasons.to_pylist(), pc.take(rem[schema.DUPLICATE_OF], idx).to_pylist())
        new_id = pc.take(rem[NEW_ID], idx)
        if pc.any(pc.is_valid(new_id)).as_py():
            table = set_columns(table, {schema.ID: pc.coalesce(new_id, table[schema.ID])})
    return table


def apply_removals(ds: ray.data.Dataset, steps: list[Step], stage: str) -> ray.data.Dataset:
    """Tag `ds` from the steps' removal files: a map, the records stay where they are."""
    if not steps:
        return ds
    kwargs = {"roots": [s.dir for s in steps], "stage": stage, "nonce": uuid.uuid4().hex,
              "storage_options_json": json.dumps(steps[0].storage_options, sort_keys=True)}
    return ds.map_batches(apply_block, batch_format="pyarrow", fn_kwargs=kwargs)


def scratch_root() -> str:
    """A local folder for the steps of a stage called outside a build (no `_work/`): one node only."""
    return tempfile.mkdtemp(prefix="sft_ray-dedup-")
