"""The build's own validation split as a distributed join on n-gram hashes (nothing on the driver).

A training record is `contaminated` (`split:validation`) when it shares an n-gram with a
validation record: the validation record's 13-grams, or its whole length when it is shorter, down
to `min_ngram` (ngrams.py, the same rule as for evaluation items). As a join:

    records --map-->  the n-gram lengths validation items use (<= ngram - min_ngram + 1 values: driver)
            --map-->  gram rows (key, id hash), 16 bytes: key = n-gram hash mixed with its length; a
                      validation record's keys (distinct per batch, id hash 0), a training record's
                      keys of exactly those lengths (distinct per record)
            --shuffle by key-->  per partition, the training id hashes whose key a validation row has:
                      the hits (one np.isin, distinct per partition)
            --join back-->  the hit list broadcast to every worker (up to `broadcast_max_hits` ids,
                      8 bytes each) and looked up by a map, or, above that, records and hits
                      shuffled by id hash together (as near.py's final join)

Why a join: the alternative, one index of every validation n-gram built on the driver and shipped to
every task, is 8 bytes per validation word: ~68 GB at 10^9 documents, on the driver and again on
every node. Here memory per worker is one batch of gram rows (emitted in steps of `ROWS_PER_STEP`),
one hash partition of gram rows (16 bytes x rows / partitions) and, on the broadcast path,
the hit list; the driver holds the lengths and the hit count. The price is a shuffle of the training
records' n-grams, one 16-byte row per distinct n-gram and length against ~6 bytes of text per word,
so gram rows are ~3x the records' in-memory bytes per n-gram length in use; the build sizes this
join's partitions from the records' bytes times that expansion (`gram_partitions`), so a reduce
task holds about `partition_bytes` of gram rows. Only records of the kinds that yield SFT examples take part
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
from sft_ray.dedup.partitions import by_key, partitions_for
from sft_ray.dedup.minhash import string_hashes
from sft_ray.dedup.ngrams import TEXT_COLUMNS, item_length, ngram_hashes, split_is, takes_part, token_hashes, word_count
from sft_ray.placement import task_options
from sft_ray.tags import tag

log = logging.getLogger("sft_ray")

STAGE, REASON, SPLIT_TAG = "dedup", "contaminated", "split:validation"
_H, _N, _RID = "decon_hash", "decon_n", "decon_id"
_IS_HIT = "decon_is_hit"
# A gram row is 16 bytes: the n-gram's hash mixed with its length, and the record's id hash (0 on
# validation rows, which need no id; odd on training rows, so never 0). Ids travel as 64-bit hashes:
# two records whose id hashes collide would share a verdict, odds ~ hits x records / 2^63 (5e-5 at
# 10^6 hits among 10^9 records); the string ids (~30 bytes) would make the shuffle ~3x larger.
GRAM_SCHEMA = pa.schema([pa.field(_H, pa.uint64()), pa.field(_RID, pa.uint64())])
HIT_SCHEMA = pa.schema([pa.field(_RID, pa.uint64())])
_LENGTH_MIX = np.uint64(0x9E3779B97F4A7C15)  # golden-ratio constant: spreads the length over the hash bits
# Bytes of gram rows per byte of records, per n-gram length in use: 16 bytes per distinct n-gram
# against ~6 bytes of text per word, plus Arrow's overhead; rounded up.
GRAM_EXPANSION_PER_LENGTH = 3
ROWS_PER_STEP = 1 << 20  # gram rows per emitted table (~40 MB): bounds a task's memory on long documents
HITS_STEP = 1 << 22  # gram rows looked up at once in a reduce (64 MB of rows, ~100 MB of temporaries)


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
def id_hashes(ids: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The 64-bit hash a record's id travels as: odd, so 0 can mark validation rows."""
    return string_hashes(ids) | np.uint64(1)


def _keyed(h: np.ndarray, length: int) -> np.ndarray:
    """An n-gram hash mixed with its length (wrapping uint64): one key for (hash, length)."""
    with np.errstate(over="ignore"):
        return h ^ (np.uint64(length) * _LENGTH_MIX)


def _rows(h: list[np.ndarray], rid: np.ndarray) -> pa.Table:
    hs = np.concatenate(h) if h else np.empty(0, np.uint64)
    return pa.Table.from_arrays([pa.array(hs, pa.uint64()), pa.array(rid, pa.uint64())], schema=GRAM_SCHEMA)


def _validation_rows(parts: dict[int, list[np.ndarray]]) -> pa.Table:
    """Distinct keys of a step's validation records; they need no id (0)."""
    h = np.unique(np.concatenate([_keyed(np.concatenate(a), n) for n, a in parts.items()]))
    return _rows([h], np.zeros(len(h), np.uint64))


def _decontaminate_grams(table: pa.Table, cfg: DecontaminateConfig, kinds: frozenset[str] | None, lengths: list[int]):
    """Gram rows of one batch (a generator: tables of at most ~ROWS_PER_STEP rows)."""
    part = takes_part(table, kinds)
    is_val, is_train = part & split_is(table, schema.VALIDATION), part & split_is(table, schema.TRAIN)
    rows = np.flatnonzero(is_val | is_train)
    texts = [table[c].take(pa.array(rows)).to_pylist() for c in TEXT_COLUMNS]
    ids = id_hashes(table[schema.ID].take(pa.array(rows)))
    cache: dict[str, int] = {}
    val: dict[int, list[np.ndarray]] = {}
    th_, owner = [], []
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
                    th_.append(_keyed(g, n))
                    owner.append(np.full(len(g), j, np.int64))
                    size += len(g)
        if size >= ROWS_PER_STEP:
            yield from _flush(val, th_, owner, ids)
            val, th_, owner, size = {}, [], [], 0
    yield from _flush(val, th_, owner, ids)


def _flush(val, th_, owner, ids: np.ndarray):
    out = []
    if val:
        out.append(_validation_rows(val))
    if th_:
        out.append(_rows(th_, ids[np.concatenate(owner)]))
    yield pa.concat_tables(out) if out else GRAM_SCHEMA.empty_table()


def _decontaminate_hits(part: pa.Table) -> pa.Table:
    """One hash partition (every row of its keys is here): the distinct id hashes of training rows
    whose key (n-gram hash and length) a validation row has.

    Chunk by chunk, never the whole partition as one array: the validation keys (a small share) are
    gathered and sorted once, then each chunk of training rows is looked up by binary search. The
    single np.isin over the partition this replaces sorted a concatenated copy with its index
    array, and the reduce peaked at 2.0 GiB private for a 340 MB partition (benchmarks/scale.py,
    20k documents)."""
    if part.num_rows == 0:
        return HIT_SCHEMA.empty_table()
    chunks = [(b.column(0).to_numpy(), b.column(1).to_numpy()) for b in part.select([_H, _RID]).to_batches(HITS_STEP)]  # zero-copy slices
    val = np.unique(np.concatenate([h[r == 0] for h, r in chunks]))
    if len(val) == 0:
        return HIT_SCHEMA.empty_table()
    hits = []
    for h, r in chunks:
        train = r != 0
        h, r = h[train], r[train]
        hits.append(np.unique(r[_contains(val, h)]))
    return pa.table({_RID: pa.array(np.unique(np.concatenate(hits)), pa.uint64())})


def validation_hits(records: ray.data.Dataset, cfg: DecontaminateConfig, kinds: frozenset[str] | None,
                    lengths: list[int], num_partitions: int) -> ray.data.Dataset:
    """Ids of the training records sharing an n-gram with a validation record (one row per
    partition that found them: distinct within a partition)."""
    grams = records.map_batches(_decontaminate_grams, batch_format="pyarrow", fn_kwargs={"cfg": cfg, "kinds": kinds, "lengths": lengths})
    parts = by_key(grams, num_partitions, [_H])
    return parts.map_batches(_decontaminate_hits, batch_format="pyarrow", batch_size=None)


# ------------------------------------------------------------------------------ joining back
@functools.lru_cache(maxsize=2)
def hit_set(ref: ray.ObjectRef) -> np.ndarray:
    """The sorted hit id hashes of a broadcast hit list, once per worker process."""
    return np.sort(ray.get(ref)[_RID].to_numpy())


def _contains(sorted_hits: np.ndarray, q: np.ndarray) -> np.ndarray:
    if len(sorted_hits) == 0:
        return np.zeros(len(q), bool)
    pos = np.minimum(np.searchsorted(sorted_hits, q), len(sorted_hits) - 1)
    return sorted_hits[pos] == q


@ray.remote
def _decontaminate_hit_list(*tables: pa.Table) -> pa.Table:
    """The distinct hit id hashes of a small, materialised hit dataset: the object every worker reads."""
    ids = [t[_RID].to_numpy() for t in tables if t.num_rows]
    return pa.table({_RID: pa.array(np.unique(np.concatenate(ids)) if ids else np.empty(0, np.uint64), pa.uint64())})


def _tag_hits(table: pa.Table, hit: np.ndarray, kinds: frozenset[str] | None) -> pa.Table:
    hit = hit & takes_part(table, kinds) & split_is(table, schema.TRAIN)
    return tag(table, STAGE, np.where(hit, REASON, None).tolist(), np.where(hit, SPLIT_TAG, None).tolist())


def _decontaminate_apply(table: pa.Table, hits: ray.ObjectRef, kinds: frozenset[str] | None) -> pa.Table:
    """Broadcast path: look each record's id hash up in the hit list."""
    return _tag_hits(table, _contains(hit_set(hits), id_hashes(table[schema.ID])), kinds)


def _decontaminate_mark(table: pa.Table) -> pa.Table:
    n = table.num_rows
    return table.append_column(_RID, pa.array(id_hashes(table[schema.ID]) if n else np.empty(0, np.uint64), pa.uint64())) \
        .append_column(_IS_HIT, pa.array(np.zeros(n, bool)))


def _decontaminate_hit_rows(hits: pa.Table, arrow_schema: pa.Schema) -> pa.Table:
    """Hit id hashes as rows of the records' schema (id hash and the hit marker; the rest null)."""
    n = hits.num_rows
    cols = {_RID: hits[_RID], _IS_HIT: pa.array(np.ones(n, bool))}
    return pa.Table.from_arrays([cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in arrow_schema], schema=arrow_schema)


def _decontaminate_join(part: pa.Table, kinds: frozenset[str] | None) -> pa.Table:
    """Shuffle path, one id-hash partition: records whose id hash has a hit row are contaminated."""
    is_hit = part[_IS_HIT]
    hits, records = part.filter(is_hit), part.filter(pc.invert(is_hit))
    hit = np.isin(records[_RID].to_numpy(), hits[_RID].to_numpy())
    return _tag_hits(records.drop_columns([_RID, _IS_HIT]), hit, kinds)


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
    arrow_schema = base.append(pa.field(_RID, pa.uint64())).append(pa.field(_IS_HIT, pa.bool_()))
    hit_rows = hits.map_batches(_decontaminate_hit_rows, batch_format="pyarrow", fn_kwargs={"arrow_schema": arrow_schema})
    merged = by_key(tagged.map_batches(_decontaminate_mark, batch_format="pyarrow").union(hit_rows), num_partitions, [_RID])
    return merged.map_batches(_decontaminate_join, batch_format="pyarrow", batch_size=None, fn_kwargs={"kinds": kinds})
