"""Global exact deduplication: hash the normalised content, group by hash across the whole
dataset (a Ray Data hash shuffle), keep the smallest id of each group.

Grouping by key across all blocks is what makes the result independent of how the input was
split into files or blocks (docs/ARCHITECTURE.md, principle 4); "smallest id" makes the survivor
deterministic, and ids are content-derived (ingest/records.py), so survivors do not depend on
file order either. Duplicates are tagged `exact_duplicate` with `duplicate_of` = the survivor.
"""

from __future__ import annotations

import hashlib

import numpy as np
import pyarrow as pa
import ray

from sft_ray import schema
from sft_ray.config import DedupConfig
from sft_ray.dedup.partitions import partitions_for
from sft_ray.tags import live_mask, set_columns, tag

STAGE = "dedup"
REASON = "exact_duplicate"


def content_key(kind: str, text: str | None, src: str | None, tgt: str | None, lowercase: bool, pair_key: str = "pair",
                question: str | None = None, answer: str | None = None) -> str:
    """128-bit blake2b of what makes two records the same: the text for documents, the
    (source, target) pair for translations, or only the source side when `pair_key="source"`
    (one target per source sentence, as bitext cleaners do). Prefixes keep the spaces apart."""
    if kind == "translation" and pair_key == "source":
        payload = "src\x00" + (src or "")
    elif kind == "translation":
        payload = "pair\x00" + (src or "") + "\x00" + (tgt or "")
    elif kind == "qa":  # many questions share one passage: the question and answer are the content too
        payload = "qa\x00" + (text or "") + "\x00" + (question or "") + "\x00" + (answer or "")
    else:
        payload = "doc\x00" + (text or "")
    if lowercase:
        payload = payload.lower()
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def add_key(table: pa.Table, lowercase: bool, pair_key: str = "pair") -> pa.Table:
    """Live rows get their content key; already-rejected rows get a key of their own, so they
    ride through the shuffle as singleton groups (one pass over the input, nothing dropped)."""
    live = live_mask(table).to_pylist()
    cols = [table[c].to_pylist() for c in (schema.KIND, schema.TEXT, schema.SRC_TEXT, schema.TGT_TEXT, schema.ID, schema.META, schema.QUESTION, schema.ANSWER)]
    keys = [
        content_key(k, t, s, g, lowercase, pair_key, q, a) if ok else f"rejected\x00{i}\x00{m}"
        for ok, k, t, s, g, i, m, q, a in zip(live, *cols)
    ]
    return table.append_column(schema.DEDUP_KEY, pa.array(keys, pa.string()))


def mark_partition(part: pa.Table) -> pa.Table:
    """One hash partition (every record of its keys is here): sort by (key, id), the first of
    each run of equal keys survives, the rest point at it. Vectorised: no Python per record."""
    if part.num_rows == 0:
        return part.drop_columns([schema.DEDUP_KEY])
    part = part.sort_by([(schema.DEDUP_KEY, "ascending"), (schema.ID, "ascending"), (schema.META, "ascending")])
    ids = part[schema.ID].to_numpy(zero_copy_only=False)
    first, dup_of = first_of_runs(part[schema.DEDUP_KEY].to_numpy(zero_copy_only=False), ids)
    tagged = tag(part, STAGE, np.where(first, None, REASON).tolist(), dup_of.tolist())
    return set_columns(tagged, {schema.ID: _unique_ids(ids, first).tolist()}).drop_columns([schema.DEDUP_KEY])


def first_of_runs(sorted_keys: np.ndarray, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Rows sorted by (key, id): (True for the first row of each run of equal keys, the run's first
    id for every other row and None for the first). Shared by record and SFT-example dedup."""
    first = np.ones(len(sorted_keys), dtype=bool)
    first[1:] = sorted_keys[1:] != sorted_keys[:-1]
    run_start = np.maximum.accumulate(np.where(first, np.arange(len(sorted_keys)), 0))
    return first, np.where(first, None, ids[run_start])


def _unique_ids(ids: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Raw-identical records share their content-derived id; give the 2nd, 3rd, ... copy the
    suffix `~dup1`, `~dup2`, ... so every reject is addressable. The copies are identical, so which
    copy gets which suffix changes nothing, and the resulting id set does not depend on file order."""
    same = np.zeros(len(ids), dtype=bool)
    same[1:] = (ids[1:] == ids[:-1]) & ~first[1:]
    if not same.any():
        return ids
    start = np.maximum.accumulate(np.where(~same, np.arange(len(ids)), 0))
    ordinal = np.arange(len(ids)) - start
    return np.array([f"{i}~dup{o}" if o else i for i, o in zip(ids, ordinal)], dtype=object)


def exact_dedup(ds: ray.data.Dataset, cfg: DedupConfig) -> ray.data.Dataset:
    """Hash-repartition by content key (Ray Data puts every row of a key in one block), then
    mark duplicates per block. Already-rejected rows have unique keys and pass through. With
    `cfg.num_partitions` unset the partitions come from `ds`'s size (dedup/partitions.py)."""
    if not (cfg.enabled and cfg.exact.enabled):
        return ds
    n = partitions_for(ds, cfg)
    keyed = ds.map_batches(add_key, batch_format="pyarrow", fn_kwargs={"lowercase": cfg.exact.lowercase, "pair_key": cfg.exact.pair_key})
    parts = keyed.repartition(n, keys=[schema.DEDUP_KEY])
    return parts.map_batches(mark_partition, batch_format="pyarrow", batch_size=None)
