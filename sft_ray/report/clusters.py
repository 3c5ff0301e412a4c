"""Dedup clusters for the report: how many, how large, and the largest ones with example texts.

A cluster is a survivor and the records the dedup stage removed as its duplicates (`duplicate_of`
= the survivor's id; exact, near or semantic). Only small rows reach the driver: a map over blocks
counts removed records per survivor, a hash repartition by survivor puts each cluster's counts in
one block where they are summed (sizes, the block's `top` largest; few counts are summed on the
driver instead), and a second map picks at most `examples` texts per cluster.
"""

from __future__ import annotations

from collections import Counter

import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema
from sft_ray.config import DedupConfig
from sft_ray.dedup.partitions import by_key, partitions_for
from sft_ray.report.aggregates import log_edges

DEDUP_STAGE = "dedup"
NOT_A_CLUSTER = ("contaminated",)  # duplicate_of names an evaluation set there, not a survivor
# Cluster sizes: one bin per size up to 10 (most clusters are pairs and triples), log-spaced above.
SIZE_EDGES = list(range(10)) + [e for e in log_edges(1_000_000) if e >= 10]
TEXT_CHARS = 300  # example texts are cut to this many characters

_MEMBER_SCHEMA = pa.schema([("group", pa.string()), ("reason", pa.string()), ("n", pa.int64())])
_EXAMPLE_SCHEMA = pa.schema([("group", pa.string()), ("role", pa.string()), ("id", pa.string()), ("source", pa.string()),
                             ("reason", pa.string()), ("text", pa.string())])


def _removed_mask(table: pa.Table) -> pa.ChunkedArray:
    return pc.fill_null(pc.and_(pc.equal(table[schema.REJECT_STAGE], DEDUP_STAGE),
                                pc.invert(pc.is_in(table[schema.REJECT_REASON], pa.array(NOT_A_CLUSTER)))), False)


def members_block(table: pa.Table) -> pa.Table:
    """Per block: (survivor id, reason, removed count)."""
    t = table.filter(_removed_mask(table))
    c = Counter(zip(t[schema.DUPLICATE_OF].to_pylist(), t[schema.REJECT_REASON].to_pylist()))
    return pa.Table.from_pylist([{"group": g, "reason": r, "n": n} for (g, r), n in c.items() if g], schema=_MEMBER_SCHEMA)


def _text(t: pa.Table) -> list[str]:
    pair = pc.binary_join_element_wise(t[schema.SRC_TEXT], t[schema.TGT_TEXT], " ⇥ ")
    return [(s or "")[:TEXT_CHARS] for s in pc.if_else(pc.is_null(t[schema.TEXT]), pair, t[schema.TEXT]).to_pylist()]


def examples_block(table: pa.Table, groups: list[str], examples: int) -> pa.Table:
    """Per block: the survivor of each cluster in `groups` and up to `examples` removed members (smallest ids)."""
    gs = pa.array(groups, pa.string())
    survivor = pc.and_(pc.is_in(table[schema.ID], gs), pc.invert(pc.fill_null(pc.equal(table[schema.DUPLICATE_OF], table[schema.ID]), False)))
    removed = pc.and_(_removed_mask(table), pc.fill_null(pc.is_in(table[schema.DUPLICATE_OF], gs), False))
    rows: list[dict] = []
    for role, mask, key in (("survivor", survivor, schema.ID), ("removed", removed, schema.DUPLICATE_OF)):
        t = table.filter(mask)
        picked: dict[str, list[dict]] = {}
        for g, i, src, r, text in sorted(zip(t[key].to_pylist(), t[schema.ID].to_pylist(), t[schema.SOURCE].to_pylist(),
                                             t[schema.REJECT_REASON].to_pylist(), _text(t)), key=lambda x: (x[0], x[1])):
            lst = picked.setdefault(g, [])
            if len(lst) < (1 if role == "survivor" else examples):
                lst.append({"group": g, "role": role, "id": i, "source": src, "reason": r, "text": text})
        rows += [r for lst in picked.values() for r in lst]
    return pa.Table.from_pylist(rows, schema=_EXAMPLE_SCHEMA)


def dedup_clusters(records: ray.data.Dataset, top: int = 5, examples: int = 2, num_partitions: int | None = None) -> dict:
    """Cluster count, removed records per reason, cluster-size histogram and the `top` largest clusters.

    One hash shuffle (by survivor id, as exact dedup does) puts each cluster's counts in one block,
    so every block's own top-k and size bins are exact; the driver merges k rows per block.
    `num_partitions` None: from the records' bytes (dedup/partitions.py; the build passes its count).
    """
    members = records.map_batches(members_block, batch_format="pyarrow")
    return clusters_from(members, records, top, examples, num_partitions or partitions_for(records, DedupConfig()))


def clusters_from(members: pa.Table | ray.data.Dataset, records: ray.data.Dataset, top: int, examples: int, num_partitions: int) -> dict:
    """dedup_clusters from `members_block` rows (computed elsewhere, e.g. in write.py's one pass: a
    table when they are few, summed here; else a Dataset, shuffled by survivor) and a Dataset to pick
    example texts from (records with their tag columns)."""
    if isinstance(members, pa.Table):  # the whole table holds whole clusters
        summary = summary_block(members, top).to_pylist()
    else:
        summary = by_key(members, num_partitions, ["group"]).map_batches(
            summary_block, batch_format="pyarrow", batch_size=None, fn_kwargs={"top": top}).take_all()  # whole blocks: a cluster is never split
    by_reason: Counter = Counter()
    size_counts: Counter = Counter()
    largest: list[tuple[int, str]] = []
    for r in summary:
        if r["kind"] == "reason":
            by_reason[r["key"]] += r["n"]
        elif r["kind"] == "bin":
            size_counts[int(r["key"])] += r["n"]
        else:
            largest.append((r["n"], r["key"]))
    largest = sorted(largest, key=lambda x: (-x[0], x[1]))[:top]
    groups = [g for _, g in largest]
    rows = records.map_batches(examples_block, batch_format="pyarrow", fn_kwargs={"groups": groups, "examples": examples}).take_all() if groups else []
    out = []
    for size, g in largest:
        mine = sorted((x for x in rows if x["group"] == g), key=lambda x: x["id"])
        surv = [x for x in mine if x["role"] == "survivor"][:1]
        out.append({"survivor_id": g, "size": size, "survivor": _clean(surv[0]) if surv else None,
                    "removed_examples": [_clean(x) for x in mine if x["role"] == "removed"][:examples]})
    return {"clusters": sum(size_counts.values()), "removed": dict(sorted(by_reason.items())), "size_edges": SIZE_EDGES,
            "size_counts": [size_counts.get(i, 0) for i in range(len(SIZE_EDGES))], "largest": out}


_SUMMARY_SCHEMA = pa.schema([("kind", pa.string()), ("key", pa.string()), ("n", pa.int64())])


def summary_block(table: pa.Table, top: int) -> pa.Table:
    """Per block of member counts holding whole clusters: removed per reason, size bins, the `top` largest."""
    import numpy as np

    sizes: Counter = Counter()
    reasons: Counter = Counter()
    for g, r, n in zip(table["group"].to_pylist(), table["reason"].to_pylist(), table["n"].to_pylist()):
        sizes[g] += n
        reasons[r] += n
    rows = [{"kind": "reason", "key": r, "n": n} for r, n in reasons.items()]
    bins = Counter((np.searchsorted(np.asarray(SIZE_EDGES), np.array(list(sizes.values()), dtype=np.int64) + 1, side="right") - 1).tolist())
    rows += [{"kind": "bin", "key": str(b), "n": n} for b, n in bins.items()]
    best = sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    rows += [{"kind": "top", "key": g, "n": n + 1} for g, n in best]  # size = survivor + removed
    return pa.Table.from_pylist(rows, schema=_SUMMARY_SCHEMA)


def _clean(x: dict) -> dict:
    return {k: x[k] for k in ("id", "source", "reason", "text")}
