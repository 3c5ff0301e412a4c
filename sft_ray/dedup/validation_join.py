"""The build's own validation split as a distributed join on n-gram hashes (nothing on the driver).

A training record is `contaminated` (`split:validation`) when it shares an n-gram with a
validation record: the validation record's 13-grams, or its whole length when it is shorter, down
to `min_ngram` (ngrams.py, the same rule as for evaluation items). As a join:

    records --map-->  the n-gram lengths validation items use (<= ngram - min_ngram + 1 values: driver)
            --map-->  gram rows (hash, length, id, is_validation): a validation record's n-grams
                      (distinct per batch, no id), a training record's n-grams of exactly those lengths
                      (distinct per record)
            --shuffle by hash-->  per partition, training ids whose (hash, length) a validation row has:
                      the hits (np.isin per length, distinct per partition)
            --join back by id-->  the hit list broadcast to every worker (up to `broadcast_max_hits`
                      ids, ~40 bytes each) and looked up by a map, or, above that, records and hits
                      shuffled by id together (as near.py's final join)

Why a join: the alternative, one index of every validation n-gram built on the driver and shipped to
every task, is 8 bytes per validation word: ~68 GB at 10^9 documents, on the driver and again on
every node. Here memory per worker is one batch of gram rows (emitted in steps of `ROWS_PER_STEP`),
one hash partition of gram rows (~(13 + id bytes) x rows / partitions) and, on the broadcast path,
the hit list; the driver holds the lengths and the hit count. The price is a shuffle of the training
records' n-grams, one row per distinct n-gram and length: ~(17 + id) bytes against ~6 bytes of text
per word, so gram rows are ~4x the records' in-memory bytes when validation items are all >= `ngram`
words and ~20x when every length from `min_ngram` to `ngram` is in use (measured on 300-word records
with 25-character ids). With the build's one partition count (sized from the records' bytes,
dedup/partitions.py), a reduce task of this join would hold that multiple of `partition_bytes`, so
the build sizes this join's partitions from the records' bytes times that expansion instead
(`gram_partitions`). Only records of the kinds that yield SFT examples take part
(ngrams.takes_part), on both sides.
"""

from __future__ import annotations

import functools
import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema
from sft_ray.config import DecontaminateConfig, DedupConfig
from sft_ray.dedup.partitions import partitions_for
from sft_ray.dedup.minhash import string_hashes
from sft_ray.dedup.ngrams import TEXT_COLUMNS, item_length, ngram_hashes, split_is, takes_part, token_hashes, word_count
from sft_ray.placement import task_options
from sft_ray.tags import tag

log = logging.getLogger("sft_ray")

STAGE, REASON, SPLIT_TAG = "dedup", "contaminated", "split:validation"
_H, _N, _RID, _IS_VAL = "decon_hash", "decon_n", "decon_id", "decon_is_validation"
_IS_HIT = "decon_is_hit"
GRAM_SCHEMA = pa.schema([pa.field(_H, pa.uint64()), pa.field(_N, pa.int32()), pa.field(_RID, pa.string()), pa.field(_IS_VAL, pa.bool_())])
HIT_SCHEMA = pa.schema([pa.field(_RID, pa.string())])
# Bytes of gram rows per byte of records, per n-gram length in use (the docstring's measurement:
# ~3.7x with 13-grams only, ~22x with the 6 lengths 8-13); rounded up.
GRAM_EXPANSION_PER_LENGTH = 4
ROWS_PER_STEP = 1 << 20  # gram rows per emitted table (~40 MB): bounds a task's memory on long documents


def gram_partitions(record_bytes: int, cfg: DedupConfig) -> int:
    """Hash partitions for the join: an explicit `dedup.num_partitions` wins; else from the records'
    bytes times the gram rows' expansion at the most lengths the config allows."""
    if cfg.num_partitions is not None:
        return cfg.num_partitions
    lengths = cfg.decontaminate.ngram - min(cfg.decontaminate.min_ngram, cfg.decontaminate.ngram) + 1
    return partitions_for(int(record_bytes) * GRAM_EXPANSION_PER_LENGTH * lengths, cfg)


# ---------------------------------------------------------------------------------- the lengths
def _decontaminate_lengths(table: pa.Table, cfg: DecontaminateConfig, kinds: frozenset[str] | None) -> pa.Table:
    """Per batch: the distinct n-gram lengths of the live validation records' items (word counts only)."""
    rows = pa.array(np.flatnonzero(takes_part(table, kinds) & split_is(table, schema.VALIDATION)))
    found = {item_length(word_count(t), cfg) for c in TEXT_COLUMNS for t in table[c].take(rows).to_pylist() if t}
    return pa.table({_N: pa.array(sorted(n for n in found if n is not None), pa.int32())})


def validation_lengths(records: ray.data.Dataset, cfg: DecontaminateConfig, kinds: frozenset[str] | None) -> list[int]:
    """The n-gram lengths the validation side uses: a tiny aggregate (<= ngram - min_ngram + 1 values)."""
    per_batch = records.map_batches(_decontaminate_lengths, batch_format="pyarrow", fn_kwargs={"cfg": cfg, "kinds": kinds})
    found: set[int] = set()
    for batch in per_batch.iter_batches(batch_format="pyarrow", batch_size=None):
        found.update(batch[_N].to_pylist())
    return sorted(found)


# ------------------------------------------------------------------------------------ gram rows
def _rows(h: list[np.ndarray], n: list[np.ndarray], rid: pa.Array, is_val: bool) -> pa.Table:
    hs = np.concatenate(h) if h else np.empty(0, np.uint64)
    ns = np.concatenate(n) if n else np.empty(0, np.int32)
    return pa.Table.from_arrays([pa.array(hs, pa.uint64()), pa.array(ns, pa.int32()), rid, pa.array(np.full(len(hs), is_val))], schema=GRAM_SCHEMA)


def _validation_rows(parts: dict[int, list[np.ndarray]]) -> pa.Table:
    """Distinct (hash, length) of a step's validation records; they need no id."""
    h = [np.unique(np.concatenate(a)) for a in parts.values()]
    n = [np.full(len(u), length, np.int32) for u, length in zip(h, parts)]
    return _rows(h, n, pa.nulls(sum(map(len, h)), pa.string()), True)


def _decontaminate_grams(table: pa.Table, cfg: DecontaminateConfig, kinds: frozenset[str] | None, lengths: list[int]):
    """Gram rows of one batch (a generator: tables of at most ~ROWS_PER_STEP rows)."""
    part = takes_part(table, kinds)
    is_val, is_train = part & split_is(table, schema.VALIDATION), part & split_is(table, schema.TRAIN)
    rows = np.flatnonzero(is_val | is_train)
    texts = [table[c].take(pa.array(rows)).to_pylist() for c in TEXT_COLUMNS]
    ids = table[schema.ID].take(pa.array(rows)).combine_chunks()
    cache: dict[str, int] = {}
    val: dict[int, list[np.ndarray]] = {}
    th_, tn_, owner = [], [], []
    size = 0
    for j, i in enumerate(rows):
        ths = [token_hashes(col[j], cache) for col in texts if col[j]]
        if is_val[i]:
            for th in ths:
                n = item_length(len(th), cfg)
                if n is not None:
                    g = ngram_hashes(th, n)
                    val.setdefault(n, []).append(g)
                    size += len(g)
        else:
            for n in lengths:
                g = np.unique(np.concatenate([ngram_hashes(th, n) for th in ths])) if ths else np.empty(0, np.uint64)
                if len(g):
                    th_.append(g)
                    tn_.append(np.full(len(g), n, np.int32))
                    owner.append(np.full(len(g), j, np.int64))
                    size += len(g)
        if size >= ROWS_PER_STEP:
            yield from _flush(val, th_, tn_, owner, ids)
            val, th_, tn_, owner, size = {}, [], [], [], 0
    yield from _flush(val, th_, tn_, owner, ids)


def _flush(val, th_, tn_, owner, ids: pa.Array):
    out = []
    if val:
        out.append(_validation_rows(val))
    if th_:
        out.append(_rows(th_, tn_, ids.take(pa.array(np.concatenate(owner))), False))
    yield pa.concat_tables(out) if out else GRAM_SCHEMA.empty_table()


def _decontaminate_hits(part: pa.Table) -> pa.Table:
    """One hash partition (every row of its hashes is here): the distinct ids of training rows whose
    (hash, length) a validation row has. Vectorised: one np.isin per n-gram length."""
    if part.num_rows == 0:
        return HIT_SCHEMA.empty_table()
    is_val = part[_IS_VAL].to_numpy(zero_copy_only=False)
    h, n = part[_H].to_numpy(), part[_N].to_numpy()
    vh, vn, th, tn = h[is_val], n[is_val], h[~is_val], n[~is_val]
    hit = np.zeros(len(th), bool)
    for length in np.unique(vn):
        sel = tn == length
        hit[sel] = np.isin(th[sel], vh[vn == length])
    train_ids = part[_RID].filter(pa.array(~is_val))
    return pa.table({_RID: pc.unique(train_ids.filter(pa.array(hit)).combine_chunks())})


def validation_hits(records: ray.data.Dataset, cfg: DecontaminateConfig, kinds: frozenset[str] | None,
                    lengths: list[int], num_partitions: int) -> ray.data.Dataset:
    """Ids of the training records sharing an n-gram with a validation record (one row per
    partition that found them: distinct within a partition)."""
    grams = records.map_batches(_decontaminate_grams, batch_format="pyarrow", fn_kwargs={"cfg": cfg, "kinds": kinds, "lengths": lengths})
    parts = grams.repartition(num_partitions, keys=[_H])
    return parts.map_batches(_decontaminate_hits, batch_format="pyarrow", batch_size=None)


# ------------------------------------------------------------------------------ joining back
class IdSet:
    """A set of record ids as sorted 64-bit hashes (a batch is matched with two binary searches);
    matches are confirmed on the id strings, so a hash collision never tags the wrong record."""

    def __init__(self, ids: pa.Array):
        h = string_hashes(ids)
        order = np.argsort(h, kind="stable")
        self.hash, self.ids = h[order], ids.take(pa.array(order))

    def contains(self, ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
        ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        q = string_hashes(ids)
        lo, hi = np.searchsorted(self.hash, q, "left"), np.searchsorted(self.hash, q, "right")
        count = hi - lo
        row = np.repeat(np.arange(len(ids)), count)
        pos = np.repeat(lo, count) + (np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count))
        same = pc.equal(ids.take(pa.array(row)), self.ids.take(pa.array(pos))).to_numpy(zero_copy_only=False)
        out = np.zeros(len(ids), bool)
        out[row[same]] = True
        return out


@functools.lru_cache(maxsize=2)
def id_set(ref: ray.ObjectRef) -> IdSet:
    """Built once per worker process for a broadcast hit list (not once per batch)."""
    return IdSet(ray.get(ref)[_RID].combine_chunks())


@ray.remote
def _decontaminate_hit_list(*tables: pa.Table) -> pa.Table:
    """The distinct hit ids of a small, materialised hit dataset: the object every worker reads."""
    ids = [t[_RID].combine_chunks() for t in tables if t.num_rows]
    return pa.table({_RID: pc.unique(pa.concat_arrays(ids)) if ids else pa.array([], pa.string())})


def _tag_hits(table: pa.Table, hit: np.ndarray, kinds: frozenset[str] | None) -> pa.Table:
    hit = hit & takes_part(table, kinds) & split_is(table, schema.TRAIN)
    return tag(table, STAGE, np.where(hit, REASON, None).tolist(), np.where(hit, SPLIT_TAG, None).tolist())


def _decontaminate_apply(table: pa.Table, hits: ray.ObjectRef, kinds: frozenset[str] | None) -> pa.Table:
    """Broadcast path: look each record's id up in the hit list."""
    return _tag_hits(table, id_set(hits).contains(table[schema.ID]), kinds)


def _decontaminate_mark(table: pa.Table) -> pa.Table:
    return table.append_column(_IS_HIT, pa.array(np.zeros(table.num_rows, bool)))


def _decontaminate_hit_rows(hits: pa.Table, arrow_schema: pa.Schema) -> pa.Table:
    """Hit ids as rows of the records' schema (id and the hit marker; the rest null)."""
    n = hits.num_rows
    cols = {schema.ID: hits[_RID], _IS_HIT: pa.array(np.ones(n, bool))}
    return pa.Table.from_arrays([cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in arrow_schema], schema=arrow_schema)


def _decontaminate_join(part: pa.Table, kinds: frozenset[str] | None) -> pa.Table:
    """Shuffle path, one id partition: records whose id has a hit row are contaminated."""
    is_hit = part[_IS_HIT]
    hits, records = part.filter(is_hit), part.filter(pc.invert(is_hit)).drop_columns([_IS_HIT])
    hit = pc.is_in(records[schema.ID], value_set=hits[schema.ID].combine_chunks()).to_numpy(zero_copy_only=False)
    return _tag_hits(records, hit, kinds)


def validation_join(records: ray.data.Dataset, tagged: ray.data.Dataset, cfg: DecontaminateConfig, kinds: frozenset[str] | None,
                    num_partitions: int) -> ray.data.Dataset:
    """Tag the training records of `tagged` (the records after the benchmark check) that share an
    n-gram with a validation record of `records` (the records before it, so a validation record
    matching a benchmark still counts, as the rule has it). `records` is read three times:
    materialise it first (build.py does)."""
    lengths = validation_lengths(records, cfg, kinds)
    if not lengths:
        log.info("decontaminate: validation split: no validation item of >= %d words", cfg.min_ngram)
        return tagged
    hits = validation_hits(records, cfg, kinds, lengths, num_partitions).materialize()
    n = hits.count()  # (partition, id) rows: an upper bound of the distinct hits
    log.info("decontaminate: validation split: n-gram lengths %s, %d hit rows over %d partitions", lengths, n, num_partitions)
    if n == 0:
        return tagged
    if n <= cfg.broadcast_max_hits:
        ref = _decontaminate_hit_list.options(**task_options()).remote(*hits.to_arrow_refs())
        return tagged.map_batches(_decontaminate_apply, batch_format="pyarrow", fn_kwargs={"hits": ref, "kinds": kinds})
    base = records.schema().base_schema  # free: records are materialised
    arrow_schema = base.append(pa.field(_IS_HIT, pa.bool_()))
    hit_rows = hits.map_batches(_decontaminate_hit_rows, batch_format="pyarrow", fn_kwargs={"arrow_schema": arrow_schema})
    merged = tagged.map_batches(_decontaminate_mark, batch_format="pyarrow").union(hit_rows).repartition(num_partitions, keys=[schema.ID])
    return merged.map_batches(_decontaminate_join, batch_format="pyarrow", batch_size=None, fn_kwargs={"kinds": kinds})
