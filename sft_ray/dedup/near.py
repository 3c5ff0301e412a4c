"""Global near-duplicate detection: MinHash-LSH over the whole dataset, survivor = smallest id.

    records --map--> + band keys (materialised: the records are read again, not recomputed)
            --shuffle by band key-->            candidate edges (member -> bucket's smallest id)   lsh.py
            --shuffle by id, then by pair-->    edges with exact Jaccard >= verify_jaccard         lsh.py
            --2 shuffles per round, 1-3 rounds--> components as stars around their smallest id     components.py
            --shuffle by id (records + labels)--> non-survivors tagged dedup / near_duplicate      here

That is the general path, for any number of edges. When the candidate edges are few (up to
`broadcast_max_edges`, 1M by default: ~100 MB per worker), which is the usual case since edges
number about the near-duplicates, the edge list is sent to every worker instead: texts are picked
by a map (no shuffle by id), components are found in one task, and records are tagged by a map (no
final shuffle). Then the whole stage is 2 shuffles: band keys, and the involved texts by pair.

Only live records of `kinds` with text take part; every other record passes through untouched and
nothing is dropped (tag, then select: docs/ARCHITECTURE.md, principle 2). Buckets, pairs and components are
formed by hash shuffles across all blocks, and every choice is "smallest id", so the result does not
depend on how the input was split into files or blocks (principle 4). Memory per worker is one
batch of signatures (text processed in 1 MB steps), one hash partition of band rows, texts under
verification, edges or records, and on the broadcast path the edge list (<= broadcast_max_edges).
The records themselves wait in Ray's object store (spilled to disk when large) between the map that
adds band keys and the final tagging. Record ids must be unique, which exact_dedup guarantees when
it runs first.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema
from sft_ray.config import DedupConfig, NearDedupConfig
from sft_ray.dedup.components import connected_components, local_components
from sft_ray.dedup.lsh import BANDS, DOC, REP, broadcast, candidate_edges, edge_index, verify_edges
from sft_ray.dedup.minhash import document_band_keys, s_curve
from sft_ray.dedup.partitions import partitions_for
from sft_ray.tags import live_mask, tag

log = logging.getLogger("sft_ray")

STAGE = "dedup"
REASON = "near_duplicate"
_IS_LABEL, _DUP_OF = "near_is_label", "near_duplicate_of"


def takes_part(table: pa.Table, cfg: NearDedupConfig) -> pa.ChunkedArray:
    """Live records of the configured kinds that have text."""
    kinds = pc.is_in(table[schema.KIND], value_set=pa.array(list(cfg.kinds), pa.string()))
    return pc.and_(pc.and_(live_mask(table), pc.fill_null(kinds, False)), pc.is_valid(table[schema.TEXT]))


def add_band_keys(table: pa.Table, cfg: NearDedupConfig) -> pa.Table:
    """Append the LSH band keys of each participating record (null for the others and for texts
    that have no token after normalisation)."""
    rows = np.flatnonzero(takes_part(table, cfg).to_numpy(zero_copy_only=False))
    keys = np.zeros((table.num_rows, cfg.num_bands), np.uint64)
    valid = np.zeros(table.num_rows, bool)
    if len(rows):
        ok, k = document_band_keys(table[schema.TEXT].take(pa.array(rows)), cfg)
        keys[rows[ok]] = k[ok]
        valid[rows[ok]] = True
    bands = pa.FixedSizeListArray.from_arrays(pa.array(keys.ravel()), cfg.num_bands, mask=pa.array(~valid))
    return table.append_column(BANDS, bands)


def _records(table: pa.Table) -> pa.Table:
    """Records as rows of the final shuffle: no band keys, not a label."""
    n = table.num_rows
    t = table.drop_columns([BANDS])
    return t.append_column(_IS_LABEL, pa.array(np.zeros(n, bool))).append_column(_DUP_OF, pa.nulls(n, pa.string()))


def _labels(edges: pa.Table, arrow_schema: pa.Schema) -> pa.Table:
    """Component edges (doc, smallest id) as rows of the records' schema: id, is_label, duplicate_of."""
    n = edges.num_rows
    cols = {schema.ID: edges[DOC], _IS_LABEL: pa.array(np.ones(n, bool)), _DUP_OF: edges[REP]}
    return pa.Table.from_arrays([cols[f.name] if f.name in cols else pa.nulls(n, f.type) for f in arrow_schema], schema=arrow_schema)


def _apply_labels(part: pa.Table) -> pa.Table:
    """One id partition: records whose id has a label become near_duplicate of its survivor."""
    is_label = part[_IS_LABEL]
    labels, records = part.filter(is_label), part.filter(pc.invert(is_label))
    idx = pc.index_in(records[schema.ID], value_set=labels[schema.ID].combine_chunks())
    dup_of = pc.take(labels[_DUP_OF], idx)
    reasons = pc.if_else(pc.is_valid(dup_of), pa.scalar(REASON), pa.scalar(None, pa.string()))
    return tag(records, STAGE, reasons.to_pylist(), dup_of.to_pylist()).drop_columns([_IS_LABEL, _DUP_OF])


def _apply_broadcast(table: pa.Table, stars: ray.ObjectRef) -> pa.Table:
    """Broadcast path of the final join: look each record's id up in the (small) star list."""
    idx = edge_index(stars)
    row, edge, is_doc = idx.lookup(table[schema.ID])
    row, edge = row[is_doc], edge[is_doc]  # a record is tagged by the edge naming it as the duplicate
    dup_of = np.full(table.num_rows, None, dtype=object)
    dup_of[row] = idx.rep.take(pa.array(edge, pa.int64())).to_numpy(zero_copy_only=False)
    reasons = np.where(dup_of != None, REASON, None)  # noqa: E711 (elementwise)
    return tag(table.drop_columns([BANDS]), STAGE, reasons.tolist(), dup_of.tolist())


def near_dedup(ds: ray.data.Dataset, cfg: DedupConfig) -> ray.data.Dataset:
    """Tag near-duplicates across the whole dataset (see the module docstring for the shuffles)."""
    near = cfg.near
    if not (cfg.enabled and near.enabled):
        return ds
    log.info("near dedup: %s; verify Jaccard >= %s", s_curve(near.num_bands, near.rows_per_band), near.verify_jaccard)
    keyed = ds.map_batches(add_band_keys, batch_format="pyarrow", fn_kwargs={"cfg": near}).materialize()
    parts = partitions_for(keyed, cfg)  # free: keyed is materialised
    edges = candidate_edges(keyed, parts).materialize()
    n = edges.count()
    small = n <= near.broadcast_max_edges
    if n and near.verify_jaccard is not None:
        edges = verify_edges(edges, keyed, near, parts, broadcast(edges) if small else None).materialize()
        log.info("near dedup: %d candidate edges, %d with Jaccard >= %s", n, edges.count(), near.verify_jaccard)
        n = edges.count()
    if n == 0:  # nothing to tag: no components, no final join
        return keyed.drop_columns([BANDS])
    if n <= near.broadcast_max_edges:
        stars = broadcast(local_components(edges))
        return keyed.map_batches(_apply_broadcast, batch_format="pyarrow", fn_kwargs={"stars": stars})
    stars = connected_components(edges, parts)
    records = keyed.map_batches(_records, batch_format="pyarrow")
    base = keyed.schema().base_schema  # free: keyed is materialised
    arrow_schema = base.remove(base.get_field_index(BANDS)).append(pa.field(_IS_LABEL, pa.bool_())).append(pa.field(_DUP_OF, pa.string()))
    labels = stars.map_batches(_labels, batch_format="pyarrow", fn_kwargs={"arrow_schema": arrow_schema})
    merged = records.union(labels).repartition(parts, keys=[schema.ID])
    return merged.map_batches(_apply_labels, batch_format="pyarrow", batch_size=None)
