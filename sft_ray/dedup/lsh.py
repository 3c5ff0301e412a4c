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
                    document's text meets the requests naming it), then by a second shuffle on
                    (rep, spread): the docs linked to a rep are spread over `REP_SPREAD` groups by a
                    hash of their id, and each group gets the rep's text once, beside its docs'
                    texts. A hub (a bucket of m near-identical pages) thus moves m + min(m, 64)
                    texts, not 2m, its docs' texts land in up to 64 groups (partitions) instead of
                    one, and its rep is shingled once per step of docs instead of once per pair.
                    With few candidate edges
                    (up to `broadcast_max_edges`) the edge list goes to every worker instead (a
                    broadcast join: `EdgeIndex`), and only the texts of documents in an edge move.

Memory per worker is one hash partition of band rows (~14 x (8 bytes + id) per document / number
of partitions) or of requested texts (a hub's texts are spread over up to `REP_SPREAD` groups), never
the whole dataset; nothing is collected to the driver.
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
from sft_ray.dedup.partitions import by_key

BANDS = "near_bands"  # fixed_size_list<uint64, b> per record, null when the record does not take part
BAND_KEY = "near_band_key"
DOC, REP = "near_doc", "near_rep"  # an edge: a document and the smaller id it is linked to
EDGE_SCHEMA = pa.schema([pa.field(DOC, pa.string()), pa.field(REP, pa.string())])
_SIDE, _TEXT, _SPREAD = "near_side_is_doc", "near_text", "near_spread"
PAIRS_PER_STEP = 256  # texts shingled at once while verifying (~1 MB of text, ~30 MB of arrays)
# Groups a rep's docs are spread over for verification (by a hash of the doc id). The rep's text goes
# once to each group its docs fall in: a rep with d docs is sent min(d, 64) times, so ordinary reps
# (1-2 docs) move as before, and a hub of 1M pages of 5 KB meets as 64 groups of ~78 MB of text
# instead of one of 5 GB. The groups change no verdict: each edge is still its doc against its rep.
REP_SPREAD = 64


def spread(docs: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The verification group of each doc id among its rep's (0 .. REP_SPREAD - 1)."""
    return (string_hashes(docs) % np.uint64(REP_SPREAD)).astype(np.int32)


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
    parts = by_key(rows, num_partitions, [BAND_KEY])
    return parts.map_batches(bucket_edges, batch_format="pyarrow", batch_size=None)


# ------------------------------------------------------------------------------------- verify
# A text row (ID, its text), or a request for the text of ID: as the doc of edge (DOC, REP), or as
# the rep REP of a spread group (one request per rep and group, however many edges name it).
_TEXT_ROW, _DOC_REQ, _REP_REQ = 0, 1, 2
_WHAT = "near_what"
_REQ_SCHEMA = pa.schema([pa.field(schema.ID, pa.string()), pa.field(DOC, pa.string()), pa.field(REP, pa.string()),
                         pa.field(_TEXT, pa.string()), pa.field(_WHAT, pa.int8()), pa.field(_SPREAD, pa.int32())])
_HALF_SCHEMA = pa.schema([pa.field(DOC, pa.string()), pa.field(REP, pa.string()), pa.field(_SIDE, pa.bool_()), pa.field(_TEXT, pa.string()),
                          pa.field(_SPREAD, pa.int32())])


def _requests(edges: pa.Table) -> pa.Table:
    """Each edge asks for its doc's text; each distinct (rep, spread group) of the block asks for the
    rep's text once."""
    doc, rep = edges[DOC].combine_chunks(), edges[REP].combine_chunks()
    group = spread(doc)
    reps = unique_rows(pa.table({REP: rep, _SPREAD: pa.array(group)}), [REP, _SPREAD])
    n, m = len(doc), reps.num_rows
    rep_ids = reps[REP].combine_chunks()
    return pa.Table.from_arrays(
        [pa.concat_arrays([doc, rep_ids]), pa.concat_arrays([doc, pa.nulls(m, pa.string())]), pa.concat_arrays([rep, rep_ids]),
         pa.nulls(n + m, pa.string()), pa.array(np.r_[np.full(n, _DOC_REQ), np.full(m, _REP_REQ)].astype(np.int8)),
         pa.array(np.r_[group, reps[_SPREAD].to_numpy()], pa.int32())],
        schema=_REQ_SCHEMA)


def _texts(table: pa.Table) -> pa.Table:
    """Participating documents' texts (ID, TEXT) as rows of the request schema."""
    n = table.num_rows
    return pa.Table.from_arrays([table[schema.ID], pa.nulls(n, pa.string()), pa.nulls(n, pa.string()), table[schema.TEXT],
                                 pa.array(np.full(n, _TEXT_ROW, np.int8)), pa.nulls(n, pa.int32())], schema=_REQ_SCHEMA)


def _attach_texts(part: pa.Table) -> pa.Table:
    """One id partition: every request gets the text of the id it names."""
    is_text = pc.equal(part[_WHAT], _TEXT_ROW)
    texts, reqs = part.filter(is_text), part.filter(pc.invert(is_text))
    reqs = unique_rows(reqs.drop_columns([_TEXT]), [schema.ID, _WHAT, DOC, REP, _SPREAD])  # the same edge from two band partitions
    idx = pc.index_in(reqs[schema.ID], value_set=texts[schema.ID].combine_chunks())
    found = pc.is_valid(idx)
    reqs, idx = reqs.filter(found), pc.drop_null(idx)
    side = pc.equal(reqs[_WHAT], _DOC_REQ)
    return pa.Table.from_arrays([reqs[DOC], reqs[REP], side, pc.take(texts[_TEXT], idx), reqs[_SPREAD]], schema=_HALF_SCHEMA)


def _score_stars(part: pa.Table, cfg: NearDedupConfig) -> pa.Table:
    """One (rep, spread group) partition: each group's rep text (once) and the texts of its docs;
    keep the edges whose exact shingle Jaccard is >= threshold. Shingled in bounded steps of docs."""
    if part.num_rows == 0:
        return EDGE_SCHEMA.empty_table()
    part = part.sort_by([(REP, "ascending"), (_SPREAD, "ascending"), (_SIDE, "ascending"), (DOC, "ascending")])
    rep, side = part[REP].to_numpy(zero_copy_only=False), part[_SIDE].to_numpy(zero_copy_only=False)
    group = part[_SPREAD].to_numpy()
    first = np.r_[True, (rep[1:] != rep[:-1]) | (group[1:] != group[:-1])]
    rep_row = np.maximum.accumulate(np.where(first, np.arange(len(rep)), 0))  # the group's first row: its rep text, if it came
    docs = np.flatnonzero(side & ~side[rep_row])
    if len(docs) == 0:
        return EDGE_SCHEMA.empty_table()
    texts, keep = part[_TEXT], []
    for chunk in np.array_split(docs, -(-len(docs) // PAIRS_PER_STEP)):  # bounded shingle arrays
        reps = np.unique(rep_row[chunk])
        rows = np.r_[reps, chunk]
        h, off = shingles(texts.take(pa.array(rows)), cfg)
        sets = {int(r): np.unique(h[off[i] : off[i + 1]]) for i, r in enumerate(rows)}
        keep += [d for d in chunk.tolist() if jaccard(sets[d], sets[int(rep_row[d])]) >= cfg.verify_jaccard]
    doc = part[DOC].to_numpy(zero_copy_only=False)
    return _edges(doc[keep], rep[keep]) if keep else EDGE_SCHEMA.empty_table()


def verify_edges(
    edges: ray.data.Dataset, texts: ray.data.Dataset, cfg: NearDedupConfig, num_partitions: int, broadcast: ray.ObjectRef | None = None,
    score_partitions: int | None = None,
) -> ray.data.Dataset:
    """Texts (ID, TEXT of the participating records) meet the edges naming them (a shuffle by id, or
    the broadcast edge list); then each rep's text, once per spread group, meets its docs' texts (a
    shuffle by rep and group, into `score_partitions`: it moves a text per edge, which a hub makes
    more than the records; near.verify_partitions)."""
    if broadcast is not None:
        halves = texts.map_batches(_involved_texts, batch_format="pyarrow", fn_kwargs={"edges": broadcast})
    else:
        reqs = edges.map_batches(_requests, batch_format="pyarrow")
        by_id = by_key(texts.map_batches(_texts, batch_format="pyarrow").union(reqs), num_partitions, [schema.ID])
        halves = by_id.map_batches(_attach_texts, batch_format="pyarrow", batch_size=None)
    by_rep = by_key(halves, score_partitions or num_partitions, [REP, _SPREAD])
    return by_rep.map_batches(_score_stars, batch_format="pyarrow", batch_size=None, fn_kwargs={"cfg": cfg})


# ------------------------------------------------------------------------------ broadcast joins
class EdgeIndex:
    """A small edge list (doc, rep) indexed by endpoint: 64-bit hashes of the ids, sorted, so that a
    batch of ids is matched with two binary searches; matches are confirmed on the id strings, so a
    hash collision never joins the wrong records. Memory ~100 bytes per edge."""

    def __init__(self, edges: pa.Table):
        self.doc, self.rep = edges[DOC].combine_chunks(), edges[REP].combine_chunks()
        self.spread = spread(self.doc)  # each edge's verification group
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
    """Broadcast path of verify_edges: (ID, TEXT) rows -> one row per edge naming the row as its doc,
    and one per (row that is a rep, spread group of its docs): its text once per group, however many
    edges name it."""
    idx = edge_index(edges)
    row, edge, is_doc = idx.lookup(table[schema.ID])
    ids, text = table[schema.ID].combine_chunks(), table[schema.TEXT].combine_chunks()
    e = pa.array(edge[is_doc], pa.int64())
    doc_rows = pa.array(row[is_doc], pa.int64())
    rep_groups = np.unique(np.stack([row[~is_doc], idx.spread[edge[~is_doc]]], axis=1), axis=0)  # (rep row, group), distinct
    rep_rows = pa.array(rep_groups[:, 0], pa.int64())
    n, m = len(doc_rows), len(rep_rows)
    return pa.Table.from_arrays(
        [pa.concat_arrays([idx.doc.take(e), pa.nulls(m, pa.string())]), pa.concat_arrays([idx.rep.take(e), ids.take(rep_rows)]),
         pa.array(np.r_[np.ones(n, bool), np.zeros(m, bool)]), pa.concat_arrays([text.take(doc_rows), text.take(rep_rows)]),
         pa.array(np.r_[idx.spread[edge[is_doc]], rep_groups[:, 1]], pa.int32())],
        schema=_HALF_SCHEMA)
