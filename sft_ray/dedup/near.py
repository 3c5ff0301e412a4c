"""Global near-duplicate detection: MinHash-LSH over the whole dataset, survivor = smallest id.

    records --map--> (id, row id, band keys) of the participants (materialised: keys, not records)
            --shuffle by band key-->            candidate edges (member -> bucket's smallest id)   lsh.py
            --shuffle by id, then by rep-->     edges with exact Jaccard >= verify_jaccard         lsh.py
            --2 shuffles per round, 1-3 rounds--> components as stars around their smallest id     components.py
            --shuffle of (id, row id) by id-->  the removal list: row id -> near_duplicate of its rep
                                                 (applied to the records by a map: removals.py)

That is the general path, for any number of edges. When the candidate edges are few (up to
`broadcast_max_edges`, 1M by default: ~100 MB per worker), which is the usual case since edges
number about the near-duplicates, the edge list is sent to every worker instead: texts are picked
by a map (no shuffle by id), components are found in one task, and the removal list comes from a
map over the keys (no final shuffle).

Only live records of `kinds` with text take part; every other record passes through untouched and
nothing is dropped (tag, then select: docs/ARCHITECTURE.md, principle 2). Buckets, pairs and
components are formed by hash shuffles across all blocks, and every choice is "smallest id", so the
result does not depend on how the input was split into files or blocks (principle 4). The records
themselves never move: memory per worker is one batch of signatures (text processed in 1 MB
steps), one hash partition of band rows, texts under verification or edges, and on the broadcast
path the edge list (<= broadcast_max_edges). Record ids must be unique among the participants,
which exact dedup guarantees when it runs first.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema
from sft_ray.config import DedupConfig, NearDedupConfig
from sft_ray.dedup.components import column_sum, connected_components, local_components
from sft_ray.dedup.lsh import BANDS, DOC, REP, broadcast, candidate_edges, edge_index, verify_edges
from sft_ray.dedup.minhash import document_band_keys, s_curve
from sft_ray.dedup.removals import REMOVAL_SCHEMA, ROW, removal_table
from sft_ray.tags import live_mask
from sft_ray.dedup.partitions import by_key

log = logging.getLogger("sft_ray")

STAGE = "dedup"
REASON = "near_duplicate"


def takes_part(table: pa.Table, cfg: NearDedupConfig) -> pa.ChunkedArray:
    """Live records of the configured kinds that have text."""
    kinds = pc.is_in(table[schema.KIND], value_set=pa.array(list(cfg.kinds), pa.string()))
    return pc.and_(pc.and_(live_mask(table), pc.fill_null(kinds, False)), pc.is_valid(table[schema.TEXT]))


TEXT_BYTES = "near_text_bytes"  # a participant's text length, for sizing verification (verify_partitions)


def band_keys(table: pa.Table, cfg: NearDedupConfig) -> pa.Table:
    """(id, row id, LSH band keys, text bytes) of each participating record with at least one token."""
    t = table.filter(takes_part(table, cfg))
    ok, k = document_band_keys(t[schema.TEXT], cfg) if t.num_rows else (np.zeros(0, bool), np.zeros((0, cfg.num_bands), np.uint64))
    rows = pa.array(np.flatnonzero(ok))
    bands = pa.FixedSizeListArray.from_arrays(pa.array(k[ok].ravel(), pa.uint64()), cfg.num_bands)
    return pa.table({schema.ID: t[schema.ID].take(rows), ROW: t[ROW].take(rows), BANDS: bands,
                     TEXT_BYTES: pc.binary_length(t[schema.TEXT]).take(rows).cast(pa.int64())})


def verify_partitions(edges: int, keyed: ray.data.Dataset, cfg: DedupConfig, num_partitions: int) -> int:
    """Partitions of verification's shuffle by (rep, group), from what it moves: one text per
    candidate edge (and a rep's text per group), not one per record. Sized from the records' bytes,
    it was one partition for a corpus with a hub of 50k near-identical pages in 100k documents
    (`benchmarks/scale.py --sizes 100000 --hub-share 0.5`): 187,244 edges for 100,000 records, and
    the task that scored them peaked at 1.48 GiB private memory. Here: edges x the participants'
    mean text bytes (components.column_sum over the materialised keys) /
    `partition_bytes`, capped at `max_partitions`, never fewer than the build's `num_partitions`."""
    moved = edges * column_sum(keyed, TEXT_BYTES) // max(1, keyed.count())
    n = max(num_partitions, min(cfg.max_partitions, math.ceil(moved / cfg.partition_bytes)))
    if n > num_partitions:
        log.info("near dedup: verification moves ~%.4g MiB of texts (%d edges): %d partitions", moved / 2**20, edges, n)
    return n


def participant_texts(table: pa.Table, cfg: NearDedupConfig) -> pa.Table:
    """(id, text) of the participating records: what verification reads."""
    t = table.filter(takes_part(table, cfg))
    return t.select([schema.ID, schema.TEXT])


def _star_removals(table: pa.Table, stars: ray.ObjectRef) -> pa.Table:
    """Broadcast path: the keys' rows named as a star's doc get a removal row (near_duplicate of its rep)."""
    idx = edge_index(stars)
    row, edge, is_doc = idx.lookup(table[schema.ID])
    row, edge = row[is_doc], edge[is_doc]
    reps = idx.rep.take(pa.array(edge, pa.int64()))
    return removal_table(table[ROW].to_numpy()[row], REASON, reps)


_IS_STAR = "near_is_star"


def _join_rows(part: pa.Table) -> pa.Table:
    """One id partition of (id, row id) keys and star rows (id, rep): removal rows of the stars' docs."""
    is_star = part[_IS_STAR]
    stars, keys = part.filter(is_star), part.filter(pc.invert(is_star))
    idx = pc.index_in(keys[schema.ID], value_set=stars[schema.ID].combine_chunks())
    hit = pc.is_valid(idx)
    keys, idx = keys.filter(hit), pc.drop_null(idx)
    return removal_table(keys[ROW].to_numpy(), REASON, pc.take(stars[REP], idx))


def _keys_for_join(table: pa.Table) -> pa.Table:
    n = table.num_rows
    return pa.table({schema.ID: table[schema.ID], ROW: table[ROW], REP: pa.nulls(n, pa.string()), _IS_STAR: pa.array(np.zeros(n, bool))})


def _stars_for_join(table: pa.Table) -> pa.Table:
    n = table.num_rows
    return pa.table({schema.ID: table[DOC], ROW: pa.nulls(n, pa.int64()), REP: table[REP], _IS_STAR: pa.array(np.ones(n, bool))})


def near_removals(ds: ray.data.Dataset, cfg: DedupConfig, num_partitions: int) -> ray.data.Dataset:
    """The removal list of near dedup over `ds` (records with row ids, earlier removals applied)."""
    near = cfg.near
    log.info("near dedup: %s; verify Jaccard >= %s", s_curve(near.num_bands, near.rows_per_band), near.verify_jaccard)
    keyed = ds.map_batches(band_keys, batch_format="pyarrow", fn_kwargs={"cfg": near}).materialize()
    edges = candidate_edges(keyed, num_partitions).materialize()
    n = edges.count()
    small = n <= near.broadcast_max_edges
    if n and near.verify_jaccard is not None:
        texts = ds.map_batches(participant_texts, batch_format="pyarrow", fn_kwargs={"cfg": near})
        edges = verify_edges(edges, texts, near, num_partitions, broadcast(edges) if small else None,
                             score_partitions=verify_partitions(n, keyed, cfg, num_partitions)).materialize()
        log.info("near dedup: %d candidate edges, %d with Jaccard >= %s", n, edges.count(), near.verify_jaccard)
        n = edges.count()
    if n == 0:  # nothing to remove: no components, no join
        return ray.data.from_arrow(REMOVAL_SCHEMA.empty_table())
    if n <= near.broadcast_max_edges:
        stars = broadcast(local_components(edges))
        return keyed.map_batches(_star_removals, batch_format="pyarrow", fn_kwargs={"stars": stars})
    stars = connected_components(edges, num_partitions)
    both = keyed.map_batches(_keys_for_join, batch_format="pyarrow").union(stars.map_batches(_stars_for_join, batch_format="pyarrow"))
    return by_key(both, num_partitions, [schema.ID]).map_batches(_join_rows, batch_format="pyarrow", batch_size=None)


def near_dedup(ds: ray.data.Dataset, cfg: DedupConfig) -> ray.data.Dataset:
    """Tag near-duplicates of `ds` (near dedup alone; a build runs dedup/steps.py)."""
    if not (cfg.enabled and cfg.near.enabled):
        return ds
    from sft_ray.dedup.steps import dedup_records

    return dedup_records(ds, cfg.model_copy(update={"exact": cfg.exact.model_copy(update={"enabled": False})}))
