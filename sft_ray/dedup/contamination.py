"""Decontamination: a record that shares a word n-gram with an evaluation item is `contaminated`.

Method (GPT-3, Brown et al. 2020, appendix C; the OLMo/Dolma decontamination tooling): lowercase,
split into words, and flag a training record if any of its 13-grams occurs in an evaluation item;
items shorter than 13 words count with their whole length down to `min_ngram` (ngrams.py).

Two kinds of evaluation data, two methods:

- Benchmarks (`benchmarks`: XQuAD, WMT test sets, ...) are small (thousands of items), so their
  n-gram hashes are built once on the driver into sorted uint64 arrays and shipped to every task
  with the UDF; each batch is checked with a vectorised `searchsorted`, no Python loop per n-gram.
  Every participating record is checked, whatever its split.
- The build's own validation split (the records' `split` column, assigned after dedup by
  format/split.py) grows with the corpus (8 bytes per validation word: ~68 GB at 10^9 documents),
  so it is never gathered: training records are matched with validation records by a distributed
  join on n-gram hash (validation_join.py). Memory per worker is one hash partition of n-gram rows
  and at most `broadcast_max_hits` hit ids; the driver holds the handful of n-gram lengths in use
  and the benchmark indexes.

Only records of the kinds that yield SFT examples take part, on both sides (`kinds`, from
build.py's `example_kinds`): nothing is trained on the others, so they are neither indexed nor
checked. Rejects: stage `dedup`, reason `contaminated`, `duplicate_of` = `benchmark:<name>` (the
first benchmark matched, in config order) or else `split:validation`, so the manifest counts per
benchmark. Already-rejected rows pass through untouched; nothing is dropped.
"""

from __future__ import annotations

import json
import logging

import fsspec
import numpy as np
import pyarrow as pa
import ray

from sft_ray import schema
from sft_ray.config import BenchmarkSetConfig, DecontaminateConfig, DedupConfig
from sft_ray.dedup.ngrams import TEXT_COLUMNS, Index, build_index, item_grams, ngram_hashes, split_is, takes_part, token_hashes
from sft_ray.dedup.partitions import partitions_for
from sft_ray.dedup.validation_join import REASON, STAGE, validation_join
from sft_ray.ingest.files import expand
from sft_ray.tags import tag

log = logging.getLogger("sft_ray")

__all__ = ["TEXT_COLUMNS", "Index", "benchmark_items", "build_index", "decontaminate", "decontaminate_batch", "item_grams", "token_hashes"]


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


# ----------------------------------------------------------------------------------- the check
def _hits(th, index: Index) -> bool:
    for n, arr in index.items():
        g = ngram_hashes(th, n)
        if len(g) and len(arr):
            pos = np.searchsorted(arr, g)
            pos[pos == len(arr)] = 0
            if np.any(arr[pos] == g):
                return True
    return False


def decontaminate_batch(table: pa.Table, indexes: list[tuple[str, Index, bool]], kinds: frozenset[str] | None = None) -> pa.Table:
    """Ray Data UDF. `indexes`: (name, index, train_only) in priority order; train_only ones are
    checked against the rows whose `split` is train. Only live records of `kinds` (None: all) are checked."""
    rows = np.flatnonzero(takes_part(table, kinds))
    is_train = split_is(table, schema.TRAIN)
    texts = [table[c].take(pa.array(rows)).to_pylist() for c in TEXT_COLUMNS]
    cache: dict[str, int] = {}
    reasons: list[str | None] = [None] * table.num_rows
    dup_of: list[str | None] = [None] * table.num_rows
    for j, i in enumerate(rows):
        hashes = [token_hashes(col[j], cache) for col in texts if col[j]]
        for name, index, train_only in indexes:
            if train_only and not is_train[i]:
                continue
            if any(_hits(th, index) for th in hashes):
                reasons[i], dup_of[i] = REASON, name
                break
    return tag(table, STAGE, reasons, dup_of)


def decontaminate(records: ray.data.Dataset, cfg: DecontaminateConfig, num_partitions: int | None = None,
                  kinds: frozenset[str] | None = None) -> ray.data.Dataset:
    """Tag contaminated records; a no-op without benchmarks and without validation records.

    `records` carry their `split` (format/split.py assign_split), which the validation join reads;
    they are read several times, so pass them materialised (build.py does). `num_partitions`: the
    hash partitions of the join's shuffles (the build's one count, dedup/partitions.py; None: from
    the records' size). `kinds`: the record kinds that take part (None: all)."""
    if not cfg.enabled:
        return records
    indexes: list[tuple[str, Index, bool]] = []
    for bench in cfg.benchmarks:
        idx = build_index(benchmark_items(bench), cfg)
        log.info("decontaminate: benchmark %s: %s n-grams", bench.name, sum(len(a) for a in idx.values()))
        indexes.append((f"benchmark:{bench.name}", idx, False))
    tagged = records
    if indexes:
        tagged = records.map_batches(decontaminate_batch, batch_format="pyarrow", fn_kwargs={"indexes": indexes, "kinds": kinds})
    if cfg.validation_split:
        parts = num_partitions or partitions_for(records, DedupConfig())
        tagged = validation_join(records, tagged, cfg, kinds, parts)
    return tagged
