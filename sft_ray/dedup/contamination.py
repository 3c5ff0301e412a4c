"""Decontamination: a record that shares a word n-gram with an evaluation item is `contaminated`.

Method (GPT-3, Brown et al. 2020, appendix C; the OLMo/Dolma decontamination tooling): lowercase,
split into words, and flag a training record if any of its 13-grams occurs in an evaluation item.
Items shorter than 13 words count with their whole length (GPT-3 did the same), down to
`min_ngram` words; shorter items (a 5-word question) are too common to be evidence.

Words are runs of letters/digits; Chinese and Japanese characters are one word each, since those
scripts have no spaces (an n-gram of characters is what overlap means there).

Evaluation sets are small (thousands of items), so their n-gram hashes are built once on the driver
into sorted uint64 arrays and shipped to every task with the UDF; each block is then checked with
a vectorised `searchsorted`, no Python loop per n-gram. The build's own validation split is one
more index, built from the validation records (the records' `split` column, assigned after dedup
by format/split.py), and only training records are checked against it. Its size grows with the
validation split (8 bytes per validation word): fine to ~10^8 validation words; beyond that, a
shuffle join on n-gram hash would be the scalable form (not built yet).

Rejects: stage `dedup`, reason `contaminated`, `duplicate_of` = `benchmark:<name>` or
`split:validation` (the first index that matched), so the manifest counts per benchmark.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re

import fsspec
import numpy as np
import pyarrow as pa
import ray

from sft_ray import schema
from sft_ray.config import BenchmarkSetConfig, DecontaminateConfig
from sft_ray.ingest.files import expand
from sft_ray.tags import live_mask, tag

log = logging.getLogger("sft_ray")

STAGE, REASON = "dedup", "contaminated"
_CJK = r"\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
_P = np.uint64(0x100000001B3)  # FNV-64 prime as the polynomial base of the rolling n-gram hash
TEXT_COLUMNS = [schema.TEXT, schema.TITLE, schema.SRC_TEXT, schema.TGT_TEXT, schema.QUESTION, schema.ANSWER]
Index = dict[int, np.ndarray]  # n-gram length -> sorted unique uint64 hashes


def token_hashes(text: str, cache: dict[str, int]) -> np.ndarray:
    """Stable 64-bit hash per lowercased word (blake2b: Python's hash() differs between workers)."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        h = cache.get(tok)
        if h is None:
            h = cache[tok] = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
        out.append(h)
    return np.array(out, dtype=np.uint64)


def ngram_hashes(th: np.ndarray, n: int) -> np.ndarray:
    """Hashes of every n-gram of a token-hash array (polynomial rolling hash, wrapping uint64)."""
    m = len(th) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    acc = np.zeros(m, dtype=np.uint64)
    for j in range(n):
        acc = acc * _P + th[j : j + m]
    return acc


def item_grams(text: str, cfg: DecontaminateConfig, cache: dict[str, int]) -> tuple[int, np.ndarray] | None:
    th = token_hashes(text, cache)
    if len(th) >= cfg.ngram:
        return cfg.ngram, ngram_hashes(th, cfg.ngram)
    if len(th) >= cfg.min_ngram:
        return len(th), ngram_hashes(th, len(th))
    return None


def _unique(parts: dict[int, list[np.ndarray]]) -> Index:
    return {n: np.unique(np.concatenate(arrs)) for n, arrs in parts.items()}


def build_index(items, cfg: DecontaminateConfig) -> Index:
    parts: dict[int, list[np.ndarray]] = {}
    cache: dict[str, int] = {}
    for text in items:
        g = item_grams(text, cfg, cache) if text else None
        if g is not None:
            parts.setdefault(g[0], []).append(g[1])
    return _unique(parts)


# ----------------------------------------------------------------------------- evaluation sets
def benchmark_items(bench: BenchmarkSetConfig):
    """Yield the text items of one evaluation set (every file its path matches)."""
    for item in expand(bench.path, bench.storage_options):
        with fsspec.open(item.url, "rt", encoding="utf-8", compression="infer", **bench.storage_options) as f:
            if bench.format == "lines":
                yield from (line.rstrip("\n") for line in f)
            elif bench.format == "jsonl":
                for line in f:
                    if line.strip():
                        obj = json.loads(line)
                        yield " ".join(str(obj[k]) for k in bench.fields if obj.get(k) is not None)
            else:  # squad
                for article in json.load(f)["data"]:
                    for para in article["paragraphs"]:
                        yield para["context"]
                        for qa in para["qas"]:
                            yield qa["question"]
                            yield from (a["text"] for a in qa.get("answers", []))


def _validation_grams(table: pa.Table, cfg: DecontaminateConfig) -> pa.Table:
    """Per block: unique n-gram hashes (with their length) of the live validation records."""
    live = live_mask(table).to_pylist()
    splits = table[schema.SPLIT].to_pylist()
    texts = [table[c].to_pylist() for c in TEXT_COLUMNS]
    val = (col[i] for i, ok in enumerate(live) if ok and splits[i] == schema.VALIDATION for col in texts)
    index = build_index(val, cfg)
    ns = [np.full(len(h), n, dtype=np.int32) for n, h in index.items()]
    return pa.table({"n": pa.array(np.concatenate(ns) if ns else np.empty(0, np.int32)),
                     "h": pa.array(np.concatenate(list(index.values())) if index else np.empty(0, np.uint64))})


def validation_index(records: ray.data.Dataset, cfg: DecontaminateConfig) -> Index:
    parts: dict[int, list[np.ndarray]] = {}
    grams = records.map_batches(_validation_grams, batch_format="pyarrow", fn_kwargs={"cfg": cfg})
    for batch in grams.iter_batches(batch_format="pyarrow", batch_size=None):
        ns, hs = batch["n"].to_numpy(), batch["h"].to_numpy()
        for n in np.unique(ns):
            parts.setdefault(int(n), []).append(hs[ns == n])
    return _unique(parts)


# ----------------------------------------------------------------------------------- the check
def _hits(th: np.ndarray, index: Index) -> bool:
    for n, arr in index.items():
        g = ngram_hashes(th, n)
        if len(g) and len(arr):
            pos = np.searchsorted(arr, g)
            pos[pos == len(arr)] = 0
            if np.any(arr[pos] == g):
                return True
    return False


def decontaminate_batch(table: pa.Table, indexes: list[tuple[str, Index, bool]]) -> pa.Table:
    """Ray Data UDF. `indexes`: (name, index, train_only) in priority order; train_only ones are
    checked against the rows whose `split` is train."""
    live = live_mask(table).to_pylist()
    splits = table[schema.SPLIT].to_pylist()
    texts = [table[c].to_pylist() for c in TEXT_COLUMNS]
    cache: dict[str, int] = {}
    reasons: list[str | None] = [None] * table.num_rows
    dup_of: list[str | None] = [None] * table.num_rows
    for i, ok in enumerate(live):
        if not ok:
            continue
        hashes = [token_hashes(col[i], cache) for col in texts if col[i]]
        is_train = splits[i] == schema.TRAIN
        for name, index, train_only in indexes:
            if train_only and not is_train:
                continue
            if any(_hits(th, index) for th in hashes):
                reasons[i], dup_of[i] = REASON, name
                break
    return tag(table, STAGE, reasons, dup_of)


def decontaminate(records: ray.data.Dataset, cfg: DecontaminateConfig) -> ray.data.Dataset:
    """Tag contaminated records; a no-op without benchmarks and without validation records.

    `records` carry their `split` (format/split.py assign_split), which is what `validation_split` reads."""
    indexes: list[tuple[str, Index, bool]] = []
    if not cfg.enabled:
        return records
    for bench in cfg.benchmarks:
        idx = build_index(benchmark_items(bench), cfg)
        log.info("decontaminate: benchmark %s: %s n-grams", bench.name, sum(len(a) for a in idx.values()))
        indexes.append((f"benchmark:{bench.name}", idx, False))
    if cfg.validation_split:
        idx = validation_index(records, cfg)
        log.info("decontaminate: validation split: %s n-grams", sum(len(a) for a in idx.values()))
        if idx:
            indexes.append(("split:validation", idx, True))
    if not indexes:
        return records
    return records.map_batches(decontaminate_batch, batch_format="pyarrow", fn_kwargs={"indexes": indexes})
