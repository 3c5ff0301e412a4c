"""Semantic dedup (SemDeDup, Abbas et al. 2023, arXiv:2303.09540) as a switchable Ray Data stage.

    records --actor pool (MiniLM loaded once per actor)--> + unit embedding of each participating row
            --hash sample of ids --> driver: spherical k-means++ on <= sample_size rows --> centroids
            --map: nearest centroid--> cluster key
            --shuffle by cluster key--> per cluster, in id order: a row whose cosine similarity to a
                                        kept row of smaller id is >= threshold is `semantic_duplicate`
                                        of the smallest such row

What exact and MinHash dedup miss and this finds: the same content reworded (paraphrases,
templated pages with other numbers). It only compares within a k-means cluster, as SemDeDup does,
so the work per cluster is bounded by `cluster_size`, not by the corpus.

Partition independence (docs/ARCHITECTURE.md, principle 4): the sample is picked by a hash of the id and sorted
by id before k-means++, a cluster is whole in one shuffle partition, and survivors are chosen in id
order. One caveat, stated rather than hidden: embeddings come from length-sorted batches, and float32
results can differ in the last bits with batch composition, so a pair within ~1e-6 of the threshold,
or a record equidistant from two centroids, could come out differently on another partitioning.

Only live records of `kinds` with text take part; all others pass through untouched.
"""

from __future__ import annotations

import hashlib
import logging
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema
from sft_ray.config import DedupConfig, SemanticDedupConfig
from sft_ray.dedup.exact import first_of_runs
from sft_ray.dedup.partitions import by_key, partitions_for
from sft_ray.pools import model_pool
from sft_ray.tags import live_mask, tag

log = logging.getLogger("sft_ray")

STAGE, REASON = "dedup", "semantic_duplicate"
_EMB, _KEY = "semantic_embedding", "semantic_key"
_BLOCK = 1024  # rows per similarity block: memory is _BLOCK x cluster floats


def takes_part(table: pa.Table, kinds: list[str]) -> np.ndarray:
    in_kinds = pc.fill_null(pc.is_in(table[schema.KIND], value_set=pa.array(list(kinds), pa.string())), False)
    return pc.and_(pc.and_(live_mask(table), in_kinds), pc.is_valid(table[schema.TEXT])).to_numpy(zero_copy_only=False)


class EmbedRecords:
    """Ray Data callable class: loads the encoder once, appends the embedding column (null for rows
    that do not take part)."""

    def __init__(self, cfg: SemanticDedupConfig):
        from sft_ray.label.embed import Embedder

        self.cfg = cfg
        self.embedder = Embedder(cfg.model, cfg.max_tokens, num_threads=int(max(1, cfg.num_cpus)), device="cuda" if cfg.num_gpus > 0 else None)

    def __call__(self, table: pa.Table) -> pa.Table:
        rows = np.flatnonzero(takes_part(table, self.cfg.kinds))
        emb = np.zeros((table.num_rows, self.embedder.dim), np.float32)
        if len(rows):
            emb[rows] = self.embedder.encode(table[schema.TEXT].take(pa.array(rows)).to_pylist(), self.cfg.embed_batch_size)
        valid = np.zeros(table.num_rows, bool)
        valid[rows] = True
        return table.append_column(_EMB, pa.FixedSizeListArray.from_arrays(pa.array(emb.ravel()), self.embedder.dim, mask=pa.array(~valid)))


def _matrix(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """(rows, dim) float32 view of a fixed-size-list column (null rows hold zeros)."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    dim = arr.type.list_size
    return arr.values.to_numpy(zero_copy_only=False).reshape(-1, dim)[arr.offset : arr.offset + len(arr)]


def _unit_hash(ids: list[str]) -> np.ndarray:
    return np.array([int.from_bytes(hashlib.blake2b(i.encode(), digest_size=8).digest(), "big") for i in ids], np.float64) / 2.0**64


def _count(table: pa.Table) -> pa.Table:
    return pa.table({"n": [table.num_rows - table[_EMB].null_count]})


def _sample(table: pa.Table, rate: float) -> pa.Table:
    t = table.filter(pc.is_valid(table[_EMB])).select([schema.ID, _EMB])
    return t.filter(pa.array(_unit_hash(t[schema.ID].to_pylist()) < rate)) if t.num_rows else t


def fit_centroids(x: np.ndarray, k: int, iterations: int, seed: int) -> np.ndarray:
    """Spherical k-means: k-means++ seeding (Arthur & Vassilvitskii 2007) on cosine distance, then
    Lloyd iterations with re-normalised centroids. x: unit rows in a fixed (id) order."""
    rng = np.random.default_rng(seed)
    k = max(1, min(k, len(x)))
    chosen = [int(rng.integers(len(x)))]
    dist = np.clip(1.0 - x @ x[chosen[0]], 0, None)
    for _ in range(1, k):
        total = dist.sum()
        i = int(rng.choice(len(x), p=dist / total)) if total > 0 else int(rng.integers(len(x)))
        chosen.append(i)
        dist = np.minimum(dist, np.clip(1.0 - x @ x[i], 0, None))
    c = x[chosen].copy()
    for _ in range(iterations):
        assign = np.argmax(x @ c.T, axis=1)
        sums = np.zeros_like(c)
        np.add.at(sums, assign, x)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        c = np.where(norms > 0, sums / np.maximum(norms, 1e-12), c)  # an emptied cluster keeps its centroid
    return c.astype(np.float32)


def _assign(table: pa.Table, centroids: np.ndarray) -> pa.Table:
    """Cluster key: `c<k>` for embedded rows, `x<id>` for the rest (so they spread over partitions)."""
    valid = pc.is_valid(table[_EMB]).to_numpy(zero_copy_only=False)
    nearest = np.argmax(_matrix(table[_EMB]) @ centroids.T, axis=1) if table.num_rows else np.zeros(0, int)
    ids = table[schema.ID].to_pylist()
    keys = [f"c{c}" if v else f"x{i}" for v, c, i in zip(valid, nearest, ids)]
    return table.append_column(_KEY, pa.array(keys, pa.string()))


def greedy_duplicates(emb: np.ndarray, threshold: float) -> np.ndarray:
    """Rows in id order: index of the first earlier kept row with cosine >= threshold, or -1 (kept)."""
    m = len(emb)
    rep = np.full(m, -1)
    kept = np.ones(m, bool)
    for start in range(0, m, _BLOCK):
        stop = min(m, start + _BLOCK)
        sims = emb[start:stop] @ emb[:stop].T
        for r in range(start, stop):
            hits = np.flatnonzero((sims[r - start, :r] >= threshold) & kept[:r])
            if len(hits):
                kept[r], rep[r] = False, hits[0]
    return rep


def _mark(part: pa.Table, threshold: float) -> pa.Table:
    """One partition holds whole clusters: mark duplicates cluster by cluster."""
    part = part.sort_by([(_KEY, "ascending"), (schema.ID, "ascending")])
    keys, ids = part[_KEY].to_numpy(zero_copy_only=False), part[schema.ID].to_numpy(zero_copy_only=False)
    first, _ = first_of_runs(keys, ids)
    starts = list(np.flatnonzero(first)) + [len(keys)]
    emb = _matrix(part[_EMB])
    dup_of = np.full(len(keys), None, dtype=object)
    for a, b in zip(starts[:-1], starts[1:]):
        if keys[a].startswith("c") and b - a > 1:
            rep = greedy_duplicates(emb[a:b], threshold)
            hit = np.flatnonzero(rep >= 0)
            dup_of[a + hit] = ids[a + rep[hit]]
    reasons = np.where(dup_of != None, REASON, None)  # noqa: E711 (elementwise)
    return tag(part, STAGE, reasons.tolist(), dup_of.tolist()).drop_columns([_EMB, _KEY])


def semantic_dedup(ds: ray.data.Dataset, cfg: DedupConfig, selector: dict[str, str] | None = None) -> ray.data.Dataset:
    """Tag semantic duplicates across the whole dataset (see the module docstring); `selector`
    places the embedding actors (config placement.models)."""
    sem = cfg.semantic
    if not (cfg.enabled and sem.enabled):
        return ds
    embedded = ds.map_batches(
        EmbedRecords, fn_constructor_args=(sem,), batch_format="pyarrow", batch_size=sem.batch_size,
        **model_pool("dedup.semantic", sem.num_cpus, sem.num_gpus, sem.concurrency, selector),
    ).materialize()
    n = sum(r["n"] for r in embedded.map_batches(_count, batch_format="pyarrow").take_all())
    if n < 2:
        return embedded.drop_columns([_EMB])
    k = math.ceil(n / sem.cluster_size)
    sample = embedded.map_batches(_sample, batch_format="pyarrow", fn_kwargs={"rate": min(1.0, sem.sample_size / n)}).to_arrow_refs()
    tables = [t for t in ray.get(sample) if t.num_rows]
    sample_t = pa.concat_tables(tables).sort_by(schema.ID)
    centroids = fit_centroids(_matrix(sample_t[_EMB]), k, sem.kmeans_iterations, sem.seed)
    log.info("semantic dedup: %d records, %d clusters fitted on %d, cosine >= %s", n, len(centroids), sample_t.num_rows, sem.threshold)
    keyed = embedded.map_batches(_assign, batch_format="pyarrow", fn_kwargs={"centroids": centroids})
    parts = by_key(keyed, partitions_for(embedded, cfg), [_KEY])  # free: embedded is materialised
    return parts.map_batches(_mark, batch_format="pyarrow", batch_size=None, fn_kwargs={"threshold": sem.threshold})
