"""LSH buckets -> candidate edges -> (optionally) exact-Jaccard verified edges, as Ray Data shuffles.

Banding (Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3.4): every document has
one key per band (minhash.band_keys); documents sharing a key in any band are candidates. As in
DataTrove's `MinhashDedupBuckets`, a bucket does not emit all its pairs: each member is linked to the
bucket's smallest id only (a star), which is enough for connected components and keeps the edge
count linear in the bucket size.

  candidate_edges   rows (band key, id), hash-shuffled by band key so that a bucket is whole in one
                    partition wherever its members came from; sort, link members to the first id.
  verify_edges      exact Jaccard of each candidate pair on the same normalised shingles, keeping
                    pairs >= `verify_jaccard` (text-dedup's `check_false_positive`; LSH alone lets
                    through ~1-10% pairs below the threshold near the S-curve's foot). A bucket's
                    member is compared with the bucket's smallest id only, as DataTrove does: a
                    member similar to another member but not to the smallest id loses that edge here
                    (other bands usually supply it). The texts travel by one shuffle on id (each
                    document's text meets the requests naming it), then the pair's two texts meet in
                    a second, much smaller shuffle on the pair. With few candidate edges (up to
                    `broadcast_max_edges`) the edge list goes to every worker instead (a broadcast
                    join: `EdgeIndex`), and only the texts of documents in an edge are shuffled.

Memory per worker is one hash partition of band rows (~14 x (8 bytes + id) per document / number
of partitions) or of requested texts, never the whole dataset; nothing is collected to the driver.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema
from sft_ray.config import NearDedupConfig
from sft_ray.dedup.minhash import jaccard, shingles, string_hashes
from sft_ray.placement import task_options

BANDS = "near_bands"  # fixed_size_list<uint64, b> per record, null when the record does not take part
BAND_KEY = "near_band_key"
DOC, REP = "near_doc", "near_rep"  # an edge: a document and the smaller id it is linked to
EDGE_SCHEMA = pa.schema([pa.field(DOC, pa.string()), pa.field(REP, pa.string())])
_SIDE, _TEXT = "near_side_is_doc", "near_text"
PAIRS_PER_STEP = 256  # texts shingled at once while verifying (~1 MB of text, ~30 MB of arrays)


def _edges(doc, rep) -> pa.Table:
    return pa.Table.from_arrays([pa.array(doc, pa.string()), pa.array(rep, pa.string())], schema=EDGE_SCHEMA)


# --------------------------------------------------------------------------------- band buckets
def band_rows(table: pa.Table) -> pa.Table:
    """(id, bands) -> one row (band key, id) per band of every participating document."""
    t = table.filter(pc.is_valid(table[BANDS]))
    if t.num_rows == 0:
        return pa.table({BAND_KEY: pa.array([], pa.uint64()), schema.ID: pa.array([], pa.string())})
    bands = t[BANDS].combine_chunks()
    width = bands.type.list_size
    keys = bands.flatten()  # row-major: document 0's bands, then document 1's ...
    ids = pc.take(t[schema.ID], pa.array(np.repeat(np.arange(t.num_rows), width)))
    return pa.table({BAND_KEY: keys, schema.ID: ids})


def bucket_edges(part: pa.Table) -> pa.Table:
    """One hash partition of band rows (every row of its keys is here): sort by (key, id); each run of
    equal keys is a bucket whose first id is its smallest; link every other member to it."""
    if part.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    part = part.sort_by([(BAND_KEY, "ascending"), (schema.ID, "ascending")])
    keys = part[BAND_KEY].to_numpy()
    first = np.ones(len(keys), dtype=bool)
    first[1:] = keys[1:] != keys[:-1]
    run_start = np.maximum.accumulate(np.where(first, np.arange(len(keys)), 0))
    member = np.flatnonzero(~first)
    ids = part[schema.ID].combine_chunks()
    doc, rep = ids.take(pa.array(member)), ids.take(pa.array(run_start[member]))
    edges = _edges(doc, rep).filter(pc.not_equal(doc, rep))  # the same id twice in a bucket: no edge
    return unique_rows(edges)


def unique_rows(table: pa.Table, keys: list[str] | None = None) -> pa.Table:
    """Distinct rows on `keys` (default: the edge; the same pair is found by several bands)."""
    keys = keys or [DOC, REP]
    if table.num_rows < 2:
        return table
    table = table.sort_by([(k, "ascending") for k in keys])
    new = np.zeros(table.num_rows, bool)
    new[0] = True
    for k in keys:
        col = table[k].to_numpy(zero_copy_only=False)
        new[1:] |= col[1:] != col[:-1]
    return table.filter(pa.array(new))


def candidate_edges(keyed: ray.data.Dataset, num_partitions: int) -> ray.data.Dataset:
    """Shuffle 1: band rows by band key; buckets -> star edges (doc, rep) with rep < doc."""
    rows = keyed.select_columns([schema.ID, BANDS]).map_batches(band_rows, batch_format="pyarrow")
    parts = rows.repartition(num_partitions, keys=[BAND_KEY])
    return parts.map_batches(bucket_edges, batch_format="pyarrow", batch_size=None)


# ------------------------------------------------------------------------------------- verify
_REQ_SCHEMA = pa.schema([pa.field(schema.ID, pa.string()), pa.field(DOC, pa.string()), pa.field(REP, pa.string()), pa.field(_TEXT, pa.string())])


def _requests(edges: pa.Table) -> pa.Table:
    """Each edge asks for two texts: one request row keyed by each end."""
    n = edges.num_rows
    ids = pa.concat_arrays([edges[DOC].combine_chunks(), edges[REP].combine_chunks()]) if n else pa.array([], pa.string())
    doc = pa.concat_arrays([edges[DOC].combine_chunks()] * 2) if n else ids
    rep = pa.concat_arrays([edges[REP].combine_chunks()] * 2) if n else ids
    return pa.Table.from_arrays([ids, doc, rep, pa.nulls(2 * n, pa.string())], schema=_REQ_SCHEMA)


def _texts(table: pa.Table) -> pa.Table:
    """Participating documents' texts, as rows of the request schema (doc and rep null)."""
    t = table.filter(pc.is_valid(table[BANDS]))
    n = t.num_rows
    return pa.Table.from_arrays([t[schema.ID], pa.nulls(n, pa.string()), pa.nulls(n, pa.string()), t[schema.TEXT]], schema=_REQ_SCHEMA)


def _attach_texts(part: pa.Table) -> pa.Table:
    """One id partition: every request gets the text of the id it names."""
    is_text = pc.is_null(part[DOC])
    texts, reqs = part.filter(is_text), part.filter(pc.invert(is_text))
    reqs = unique_rows(reqs, [schema.ID, DOC, REP])  # the same edge found in two band partitions
    idx = pc.index_in(reqs[schema.ID], value_set=texts[schema.ID].combine_chunks())
    found = pc.is_valid(idx)
    reqs, idx = reqs.filter(found), pc.drop_null(idx)
    side = pc.equal(reqs[schema.ID], reqs[DOC])
    return pa.table({DOC: reqs[DOC], REP: reqs[REP], _SIDE: side, _TEXT: pc.take(texts[_TEXT], idx)})


def _score_pairs(part: pa.Table, cfg: NearDedupConfig) -> pa.Table:
    """One pair partition: both texts of each edge are here; keep edges with Jaccard >= threshold."""
    if part.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    part = part.sort_by([(DOC, "ascending"), (REP, "ascending"), (_SIDE, "ascending")])
    doc, rep = part[DOC].to_numpy(zero_copy_only=False), part[REP].to_numpy(zero_copy_only=False)
    side = part[_SIDE].to_numpy(zero_copy_only=False)
    # Rows come as (rep's text, doc's text) for each pair whose two texts both arrived.
    pair = np.flatnonzero((~side[:-1]) & side[1:] & (doc[:-1] == doc[1:]) & (rep[:-1] == rep[1:]))
    if len(pair) == 0:
        return EDGE_SCHEMA.empty_table()
    keep = []
    for chunk in np.array_split(pair, -(-len(pair) // PAIRS_PER_STEP)):  # bounded shingle arrays
        h, off = shingles(part[_TEXT].take(pa.array(np.column_stack((chunk, chunk + 1)).ravel())), cfg)
        for i, p in enumerate(chunk):
            rep_set = np.unique(h[off[2 * i] : off[2 * i + 1]])
            doc_set = np.unique(h[off[2 * i + 1] : off[2 * i + 2]])
            if jaccard(doc_set, rep_set) >= cfg.verify_jaccard:
                keep.append(p)
    return _edges(doc[keep], rep[keep]) if keep else EDGE_SCHEMA.empty_table()


def verify_edges(
    edges: ray.data.Dataset, keyed: ray.data.Dataset, cfg: NearDedupConfig, num_partitions: int, broadcast: ray.ObjectRef | None = None
) -> ray.data.Dataset:
    """Texts meet the edges naming them (a shuffle by id, or the broadcast edge list), then each
    pair's two texts meet (a shuffle by pair) and are compared on exact shingle Jaccard."""
    if broadcast is not None:
        halves = keyed.select_columns([schema.ID, schema.TEXT, BANDS]).map_batches(
            _involved_texts, batch_format="pyarrow", fn_kwargs={"edges": broadcast}
        )
    else:
        texts = keyed.select_columns([schema.ID, schema.TEXT, BANDS]).map_batches(_texts, batch_format="pyarrow")
        reqs = edges.map_batches(_requests, batch_format="pyarrow")
        by_id = texts.union(reqs).repartition(num_partitions, keys=[schema.ID])
        halves = by_id.map_batches(_attach_texts, batch_format="pyarrow", batch_size=None)
    by_pair = halves.repartition(num_partitions, keys=[DOC, REP])
    return by_pair.map_batches(_score_pairs, batch_format="pyarrow", batch_size=None, fn_kwargs={"cfg": cfg})


# ------------------------------------------------------------------------------ broadcast joins
class EdgeIndex:
    """A small edge list (doc, rep) indexed by endpoint: 64-bit hashes of the ids, sorted, so that a
    batch of ids is matched with two binary searches; matches are confirmed on the id strings, so a
    hash collision never joins the wrong records. Memory ~100 bytes per edge."""

    def __init__(self, edges: pa.Table):
        self.doc, self.rep = edges[DOC].combine_chunks(), edges[REP].combine_chunks()
        n = len(self.doc)
        ends = pa.concat_arrays([self.doc, self.rep])
        h = string_hashes(ends)
        order = np.argsort(h, kind="stable")
        self.hash = h[order]
        self.edge = np.concatenate((np.arange(n), np.arange(n)))[order]
        self.is_doc = np.concatenate((np.ones(n, bool), np.zeros(n, bool)))[order]
        self.ends = ends.take(pa.array(order))

    def lookup(self, ids: pa.Array | pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(row in `ids`, edge, is the doc end) for every edge end equal to one of `ids`."""
        ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
        q = string_hashes(ids)
        lo, hi = np.searchsorted(self.hash, q, "left"), np.searchsorted(self.hash, q, "right")
        count = hi - lo
        total = int(count.sum())
        row = np.repeat(np.arange(len(ids)), count)
        pos = np.repeat(lo, count) + (np.arange(total) - np.repeat(np.cumsum(count) - count, count))
        same = pc.equal(ids.take(pa.array(row)), self.ends.take(pa.array(pos))).to_numpy(zero_copy_only=False)
        return row[same], self.edge[pos[same]], self.is_doc[pos[same]]


@functools.lru_cache(maxsize=2)
def edge_index(ref: ray.ObjectRef) -> EdgeIndex:
    """Built once per worker process for a broadcast edge list (not once per batch)."""
    return EdgeIndex(ray.get(ref))


@ray.remote
def concat_edges(*tables: pa.Table) -> pa.Table:
    """One table of a small, materialised edge dataset: the object every worker reads."""
    tables = [t.select([DOC, REP]) for t in tables if t.num_rows]
    return unique_rows(pa.concat_tables(tables)) if tables else EDGE_SCHEMA.empty_table()


def broadcast(edges: ray.data.Dataset) -> ray.ObjectRef:
    """Concatenate a materialised edge dataset in a task (its blocks never reach the driver)."""
    return concat_edges.options(**task_options()).remote(*edges.to_arrow_refs())


def _involved_texts(table: pa.Table, edges: ray.ObjectRef) -> pa.Table:
    """Broadcast path of verify_edges: the texts of documents in an edge, one row per edge end."""
    t = table.filter(pc.is_valid(table[BANDS]))
    idx = edge_index(edges)
    row, edge, is_doc = idx.lookup(t[schema.ID])
    e = pa.array(edge, pa.int64())
    return pa.table({DOC: idx.doc.take(e), REP: idx.rep.take(e), _SIDE: pa.array(is_doc), _TEXT: t[schema.TEXT].take(pa.array(row, pa.int64()))})
