"""Connected components of the duplicate graph, distributed: alternating large-star / small-star.

Kiveris, Lattanzi, Mirrokni, Rastogi & Vassilvitskii, "Connected Components in MapReduce and
Beyond" (SoCC 2014), the algorithm behind GraphFrames' `connectedComponents`. Each step is one hash
shuffle of the edge list by node, then a vectorised per-partition rewrite; no step ever holds more
than one partition of edges, so memory per worker is bounded by |edges| / partitions (one giant
component's centre is the exception: its edges meet in one partition, as in every such algorithm).

  large-star(u):  m = min(u, neighbours(u)); every neighbour v > u is relinked to m
  small-star(u):  N = neighbours(u) smaller than u, m = min(N); every v in N and u itself link to m

Alternating them converges, in O(log^2 n) rounds (in practice 1-3 here), to a forest of stars whose
centre is its component's smallest id: the deterministic survivor, whatever the partitioning. The
loop stops when the input of a small-star step is already such a forest (no node has two smaller
neighbours, or a smaller and a larger one); that check is a count the driver reads, not data.

With few edges (up to `broadcast_max_edges`) the whole edge list fits one task comfortably, and
`local_components` does the same in one Ray task with vectorised hooking and pointer jumping
(Shiloach & Vishkin 1982) over integer codes that sort like the ids: no shuffle rounds at all.

Components are transitive closures: with verified edges A~B and B~C, C is a duplicate of A even
when Jaccard(A, C) is below the threshold. DataTrove and text-dedup cluster the same way.
"""

from __future__ import annotations

import logging

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray.dedup.lsh import DOC, EDGE_SCHEMA, REP, unique_rows
from sft_ray.placement import task_options
from sft_ray.dedup.partitions import by_key

log = logging.getLogger("sft_ray")

MAX_ROUNDS = 64  # each round at least halves the distance to the centre in practice; 64 is a guard
_U, _V, _BAD = "near_u", "near_v", "near_bad"
_BOTH_SCHEMA = pa.schema([pa.field(_U, pa.string()), pa.field(_V, pa.string())])
_OUT_SCHEMA = pa.schema([pa.field(DOC, pa.string()), pa.field(REP, pa.string()), pa.field(_BAD, pa.int64())])


def _both_directions(edges: pa.Table) -> pa.Table:
    """Each undirected edge as (u, v) and (v, u), so that grouping by u sees all of u's neighbours."""
    d, r = edges[DOC].combine_chunks(), edges[REP].combine_chunks()
    return pa.Table.from_arrays([pa.concat_arrays([d, r]), pa.concat_arrays([r, d])], schema=_BOTH_SCHEMA)


def _grouped(part: pa.Table) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Sorted distinct (u, v) without self-loops, with each row's group start (first row of its u)."""
    part = part.filter(pc.not_equal(part[_U], part[_V]))
    part = unique_rows(part, [_U, _V])  # sorted by (u, v), distinct
    u = part[_U].to_numpy(zero_copy_only=False)
    v = part[_V].to_numpy(zero_copy_only=False)
    first = np.ones(len(u), dtype=bool)
    first[1:] = u[1:] != u[:-1]
    start = np.maximum.accumulate(np.where(first, np.arange(len(u)), 0))
    return u, v, first, start


def _out(doc, rep, bad: int = 0) -> pa.Table:
    n = len(doc)
    return pa.Table.from_arrays(
        [pa.array(doc, pa.string()), pa.array(rep, pa.string()), pa.array(np.full(n, bad, np.int64))], schema=_OUT_SCHEMA
    )


def large_star(part: pa.Table) -> pa.Table:
    """Per node u: link every larger neighbour to m = min(u, smallest neighbour)."""
    if part.num_rows == 0:
        return _OUT_SCHEMA.empty_table()
    u, v, _, start = _grouped(part)
    if len(u) == 0:
        return _OUT_SCHEMA.empty_table()
    smallest = v[start]  # rows are sorted by v within u
    m = np.where(smallest < u, smallest, u)
    larger = v > u
    return _out(v[larger], m[larger])


def small_star(part: pa.Table) -> pa.Table:
    """Per node u: link u and its smaller neighbours to the smallest of them. Also counts nodes that
    break the star-forest shape (the convergence test) into the `bad` column of the first row."""
    if part.num_rows == 0:
        return _OUT_SCHEMA.empty_table()
    u, v, first, start = _grouped(part)
    if len(u) == 0:
        return _OUT_SCHEMA.empty_table()
    group = np.cumsum(first) - 1
    ngroups = int(group[-1]) + 1
    smaller = v < u
    n_smaller = np.bincount(group, weights=smaller, minlength=ngroups)
    n_larger = np.bincount(group, weights=~smaller, minlength=ngroups)
    bad = int(np.count_nonzero((n_smaller >= 2) | ((n_smaller >= 1) & (n_larger >= 1))))
    m = v[start]  # the smallest neighbour; it is smaller than u exactly when u has a smaller neighbour
    rows = np.flatnonzero(smaller & (v != m))
    heads = np.flatnonzero(first & smaller)  # u itself, when it has a smaller neighbour
    out = _out(np.concatenate((v[rows], u[heads])), np.concatenate((m[rows], m[heads])))
    if out.num_rows:
        out = out.set_column(2, _BAD, pa.array(np.r_[bad, np.zeros(out.num_rows - 1, np.int64)]))
    return out


def _step(edges: ray.data.Dataset, fn, num_partitions: int) -> ray.data.Dataset:
    both = edges.map_batches(_both_directions, batch_format="pyarrow")
    return by_key(both, num_partitions, [_U]).map_batches(fn, batch_format="pyarrow", batch_size=None)


@ray.remote
def _block_sum(table: pa.Table, column: str) -> int:
    return int(pc.sum(table[column]).as_py() or 0) if table.num_rows else 0  # Ray Data's empty blocks carry no columns


def column_sum(ds: ray.data.Dataset, column: str) -> int:
    """Sum of an integer column of a materialised Dataset, by one plain task per block (not a Ray
    Data execution, whose aggregate starts a shuffle); only the per-block sums reach the driver.
    Used for the components' convergence count and to size near-dedup verification (near.py)."""
    return sum(ray.get([_block_sum.options(**task_options()).remote(ref, column) for ref in ds.to_arrow_refs()]))


def connected_components(edges: ray.data.Dataset, num_partitions: int) -> ray.data.Dataset:
    """Edges (doc, rep) -> one row (doc, rep = its component's smallest id) per non-smallest member.
    Materialises the (small) edge list once per round; the driver reads only a count."""
    for rnd in range(1, MAX_ROUNDS + 1):
        edges = _step(_step(edges, large_star, num_partitions), small_star, num_partitions).materialize()
        bad = column_sum(edges, _BAD)
        log.info("near dedup: components round %d, %d nodes not yet in stars", rnd, bad)
        if not bad:
            return edges.select_columns([DOC, REP])
    raise RuntimeError(f"near dedup: connected components did not converge in {MAX_ROUNDS} rounds")


def star_labels(doc: np.ndarray, rep: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Edges as integer codes -> (node, root) for every node whose root (smallest code in its
    component) is not itself. Hook each edge's larger root under the smaller, then jump pointers
    until every node points at a root; repeat until no edge joins two roots."""
    n = int(max(doc.max(), rep.max())) + 1
    parent = np.arange(n)
    while True:
        ra, rb = parent[doc], parent[rep]
        if np.array_equal(ra, rb):
            break
        np.minimum.at(parent, np.maximum(ra, rb), np.minimum(ra, rb))
        while True:
            jumped = parent[parent]
            if np.array_equal(jumped, parent):
                break
            parent = jumped
    nodes = np.flatnonzero(parent != np.arange(n))
    return nodes, parent[nodes]


@ray.remote
def _local_components(*tables: pa.Table) -> pa.Table:
    tables = [t.select([DOC, REP]) for t in tables if t.num_rows]
    if not tables:
        return EDGE_SCHEMA.empty_table()
    edges = pa.concat_tables(tables)
    # Codes in sorted id order, so the smallest code of a component is its smallest id.
    ids, codes = np.unique(np.concatenate([edges[DOC].to_numpy(zero_copy_only=False), edges[REP].to_numpy(zero_copy_only=False)]).astype(object), return_inverse=True)
    m = edges.num_rows
    nodes, roots = star_labels(codes[:m], codes[m:])
    return pa.Table.from_arrays([pa.array(ids[nodes], pa.string()), pa.array(ids[roots], pa.string())], schema=EDGE_SCHEMA)


def local_components(edges: ray.data.Dataset) -> ray.data.Dataset:
    """connected_components for a small materialised edge list: one task, same result."""
    return ray.data.from_arrow_refs([_local_components.options(**task_options()).remote(*edges.to_arrow_refs())])
