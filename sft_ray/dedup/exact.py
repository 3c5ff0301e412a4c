"""Global exact deduplication: hash the normalised content, group by hash across the whole
dataset (a Ray Data hash shuffle of keys only: 16-byte hash, id, meta, row id), keep the smallest
id of each group; the losers form a removal list applied to the records by a map (removals.py).

Grouping by key across all blocks is what makes the result independent of how the input was
split into files or blocks (docs/ARCHITECTURE.md, principle 4); "smallest id" makes the survivor
deterministic, and ids are content-derived (ingest/records.py), so survivors do not depend on
file order either. Duplicates are tagged `exact_duplicate` with `duplicate_of` = the survivor.
"""

from __future__ import annotations

import hashlib
import unicodedata

import numpy as np
import pyarrow as pa
import ray

from sft_ray import schema
from sft_ray.config import DedupConfig
from sft_ray.dedup.removals import REMOVAL_SCHEMA, ROW, removal_table
from sft_ray.tags import live_mask
from sft_ray.dedup.partitions import by_key

STAGE = "dedup"
REASON = "exact_duplicate"


def content_key(kind: str, text: str | None, src: str | None, tgt: str | None, lowercase: bool, pair_key: str = "pair",
                question: str | None = None, answer: str | None = None, nfkc: bool = False) -> bytes:
    """128-bit blake2b of what makes two records the same: the text for documents, the
    (source, target) pair for translations, or only the source side when `pair_key="source"`
    (one target per source sentence, as bitext cleaners do). Prefixes keep the spaces apart. With
    `nfkc`, compatibility forms fold first (Unicode UAX #15: full-width "ＡＢＣ１２３" = "ABC123", the
    form East Asian input methods often type); ASCII text is left as it is (NFKC cannot change it)."""
    if kind == "translation" and pair_key == "source":
        payload = "src\x00" + (src or "")
    elif kind == "translation":
        payload = "pair\x00" + (src or "") + "\x00" + (tgt or "")
    elif kind == "qa":  # many questions share one passage: the question and answer are the content too
        payload = "qa\x00" + (text or "") + "\x00" + (question or "") + "\x00" + (answer or "")
    else:
        payload = "doc\x00" + (text or "")
    if nfkc and not payload.isascii():
        payload = unicodedata.normalize("NFKC", payload)
    if lowercase:
        payload = payload.lower()
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).digest()


def key_rows(table: pa.Table, lowercase: bool, pair_key: str = "pair", nfkc: bool = False) -> pa.Table:
    """(content key, id, meta, row id) of the live rows: all that the shuffle moves. Rejected rows
    are not keyed and stay untouched (nothing is dropped: tag, then select)."""
    t = table.filter(live_mask(table))
    cols = [t[c].to_pylist() for c in (schema.KIND, schema.TEXT, schema.SRC_TEXT, schema.TGT_TEXT, schema.QUESTION, schema.ANSWER)]
    keys = [content_key(k, x, s, g, lowercase, pair_key, q, a, nfkc) for k, x, s, g, q, a in zip(*cols)]
    return pa.table({schema.DEDUP_KEY: pa.array(keys, pa.binary(16)), schema.ID: t[schema.ID], schema.META: t[schema.META], ROW: t[ROW]})


def mark_partition(part: pa.Table) -> pa.Table:
    """One hash partition of keys (every row of its keys is here): sort by (key, id, meta), the first
    of each run of equal keys survives, the rest point at it. Returns their removal rows.
    Vectorised: no Python per record."""
    if part.num_rows == 0:
        return REMOVAL_SCHEMA.empty_table()
    part = part.sort_by([(schema.DEDUP_KEY, "ascending"), (schema.ID, "ascending"), (schema.META, "ascending")])
    ids = part[schema.ID].to_numpy(zero_copy_only=False)
    first, dup_of = first_of_runs(part[schema.DEDUP_KEY].to_numpy(zero_copy_only=False), ids)
    new_ids = _unique_ids(ids, first)
    lose = np.flatnonzero(~first)
    renamed = np.where(new_ids[lose] != ids[lose], new_ids[lose], None)
    return removal_table(part[ROW].to_numpy()[lose], REASON, dup_of[lose].tolist(), renamed.tolist())


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


def exact_removals(ds: ray.data.Dataset, cfg: DedupConfig, num_partitions: int) -> ray.data.Dataset:
    """The removal list of exact dedup: keys hash-shuffled (Ray Data puts every row of a key in one
    partition), duplicates marked per partition. `ds` must carry row ids (removals.ROW)."""
    keyed = ds.map_batches(key_rows, batch_format="pyarrow", fn_kwargs={"lowercase": cfg.exact.lowercase, "pair_key": cfg.exact.pair_key, "nfkc": cfg.exact.nfkc})
    return by_key(keyed, num_partitions, [schema.DEDUP_KEY]).map_batches(mark_partition, batch_format="pyarrow", batch_size=None)


def exact_dedup(ds: ray.data.Dataset, cfg: DedupConfig) -> ray.data.Dataset:
    """Tag exact duplicates of `ds` (exact dedup alone; a build runs dedup/steps.py). With
    `cfg.num_partitions` unset the partitions come from `ds`'s size (dedup/partitions.py)."""
    if not (cfg.enabled and cfg.exact.enabled):
        return ds
    from sft_ray.dedup.steps import dedup_records

    return dedup_records(ds, cfg.model_copy(update={"near": cfg.near.model_copy(update={"enabled": False})}))
