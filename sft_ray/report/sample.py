"""Bounded, deterministic samples of records for the report: the sample table, filter scores,
percentiles and example rejects per reason.

Bottom-k sampling by a hash of the record id: every block keeps its `PER_BLOCK` records of smallest
hash per stratum (kept, rejected by clean, rejected later) and `REJECTS_PER_REASON` per (stage,
reason); the driver keeps the global smallest `SAMPLE_SIZE` per stratum. The union of the blocks'
bottom-k holds the global bottom-k whenever no block holds more than `PER_BLOCK` of them, so the
sample is a uniform sample of each stratum without replacement (Cohen & Kaplan 2007, "Summarizing
data using bottom-k sketches"), the same on every rerun, and its cost is bounded: at most
3 x PER_BLOCK records per block are scored and at most blocks x (3 x PER_BLOCK + reasons x 3) small
rows reach the driver, never the records themselves (docs/ARCHITECTURE.md, "Scale").
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sft_ray import schema
from sft_ray.report.scores import doc_scores

PER_BLOCK = 16  # records per stratum and block that are scored and sent to the driver
SAMPLE_SIZE = 400  # records per stratum in the report
REJECTS_PER_REASON = 3
TEXT_CHARS = 300  # texts in the report are cut to this many characters
STRATA = ("kept", "clean", "later")  # kept; rejected by the clean stage; rejected by a later stage (dedup, label, ...)


def ranks(ids: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A stable 63-bit hash of each id (pandas' SipHash with its fixed key: the same in every process)."""
    import pandas as pd

    h = pd.util.hash_array(np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object), categorize=False)
    return (h >> np.uint64(1)).astype(np.int64)


def display_text(table: pa.Table) -> pa.Array:
    """`text`, or a pair's `src_text ⇥ tgt_text` (as report/clusters.py shows them)."""
    pair = pc.binary_join_element_wise(table[schema.SRC_TEXT], table[schema.TGT_TEXT], " ⇥ ")
    return pc.if_else(pc.is_null(table[schema.TEXT]), pair, table[schema.TEXT])


def _bottom(rank: np.ndarray, mask: np.ndarray, k: int) -> np.ndarray:
    idx = np.flatnonzero(mask)
    return idx[np.argsort(rank[idx], kind="stable")[:k]]


def sample_block(table: pa.Table, live: pa.ChunkedArray) -> list[dict]:
    """Per block: rows (what = sample | reject) for the profile's row schema (report/aggregates.py)."""
    if table.num_rows == 0:
        return []
    rank = ranks(table[schema.ID])
    kept = live.to_numpy(zero_copy_only=False)
    stage = pc.fill_null(table[schema.REJECT_STAGE], "").to_numpy(zero_copy_only=False)
    picks = [("sample", s, _bottom(rank, m, PER_BLOCK)) for s, m in zip(STRATA, (kept, ~kept & (stage == "clean"), ~kept & (stage != "clean")))]
    key = np.asarray(pc.binary_join_element_wise(pc.fill_null(table[schema.REJECT_STAGE], ""), pc.fill_null(table[schema.REJECT_REASON], ""),
                                                 "\0").to_numpy(zero_copy_only=False), dtype=object)
    for k in np.unique(key[~kept]).tolist():  # a few (stage, reason) pairs per block
        picks.append(("reject", k, _bottom(rank, ~kept & (key == k), REJECTS_PER_REASON)))
    rows: list[dict] = []
    for what, key, idx in picks:
        if len(idx) == 0:
            continue
        t = table.take(pa.array(idx, pa.int64()))
        for i, rec in zip(idx.tolist(), _records(t, score=what == "sample")):
            rows.append({"what": what, "key": key, "n": int(rank[i]), "json": json.dumps(rec, ensure_ascii=False)})
    return rows


def _records(t: pa.Table, score: bool) -> list[dict]:
    texts = display_text(t).to_pylist()
    cols = {c: t[c].to_pylist() for c in (schema.ID, schema.SOURCE, schema.KIND, schema.LANG, schema.LANG_SCORE, schema.LABEL,
                                          schema.REJECT_STAGE, schema.REJECT_REASON, schema.DUPLICATE_OF) if c in t.column_names}
    out = []
    for i, text in enumerate(texts):
        rec = {c: v[i] for c, v in cols.items()}
        text = text or ""
        rec["chars"], rec["words"] = len(text), len(text.split())
        if score and rec.get(schema.KIND) != "translation" and text:
            rec["scores"] = doc_scores(text)
        rec["text"] = text[:TEXT_CHARS]
        out.append(rec)
    return out


def merge(rows: list[dict]) -> tuple[dict, dict]:
    """(samples per stratum, rejects per stage and reason) from every block's rows, bounded."""
    strata: dict[str, list] = {s: [] for s in STRATA}
    rejects: dict[str, list] = {}
    for r in rows:
        (strata[r["key"]] if r["what"] == "sample" else rejects.setdefault(r["key"], [])).append((r["n"], r["json"]))
    samples = {s: [json.loads(j) for _, j in sorted(v)[:SAMPLE_SIZE]] for s, v in strata.items()}
    by_reason: dict = {}
    for key, v in sorted(rejects.items()):
        st, rs = key.split("\0", 1)
        by_reason.setdefault(st, {})[rs] = [json.loads(j) for _, j in sorted(v)[:REJECTS_PER_REASON]]
    return samples, by_reason


PERCENTILES = (1, 5, 25, 50, 75, 95, 99)


def percentiles(values: list[float]) -> dict:
    """p1 ... p99 of `values` (numpy's linear interpolation) and how many values they come from."""
    if not values:
        return {"n": 0}
    q = np.percentile(np.asarray(values, dtype=float), PERCENTILES)
    return {"n": len(values), **{f"p{p}": round(float(v), 4) for p, v in zip(PERCENTILES, q)}}


def prune(rows: list[dict]) -> list[dict]:
    """Keep only the rows `merge` can still use: the bounded state of a streaming merge."""
    keep: dict[tuple[str, str], list[dict]] = {}
    for r in rows:
        keep.setdefault((r["what"], r["key"]), []).append(r)
    out: list[dict] = []
    for (what, _), v in keep.items():
        out += sorted(v, key=lambda r: r["n"])[: SAMPLE_SIZE if what == "sample" else REJECTS_PER_REASON]
    return out
