"""How good the LLM teacher's targets are: validity rate, and chrF / ROUGE-L against a reference where one exists.

    validity    per teacher task, the share of its requests whose output parsed and validated
                (synthesize/parse.py); the others are `invalid_teacher_output` examples in sft/rejects/.
    reference   for free-text tasks (`teacher.tasks.<name>.output: text`, e.g. a summary or headline), the
                record's own `title` where it has one: the teacher's valid output against it, corpus chrF
                (sacrebleu defaults, as train/task_eval.py) and mean ROUGE-L F1 (train/task_eval.py
                rouge_l_f1), 0-100. JSON tasks (qa) have no reference in the record and get validity only.

Both are read off the SFT dataset the build already holds, after the teacher ran: nothing is added
to the teacher's own path. The reference pairs come from a join on record id of two small projections
((task, record id, output) and (record id, title)), shuffled together by record id as the build's
other joins are (dedup/validation_join.py: union, repartition by key, pair within each partition with
pyarrow's join); each partition's pairs become one row per task of
summed chrF statistics and ROUGE-L, folded on the driver (sacrebleu's corpus chrF is computed from the
sum of its per-segment statistics), so no record reaches the driver (docs/ARCHITECTURE.md, "Scale").
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sft_ray import schema
from sft_ray.dedup.partitions import by_key

INVALID_TEACHER_OUTPUT = "invalid_teacher_output"  # synthesize/teacher.py REASON
_OUT, _REF = "teacher_output", "reference"
_PAIR_SCHEMA = pa.schema([pa.field("task", pa.string()), pa.field("source_id", pa.string()), pa.field(_OUT, pa.string()), pa.field(_REF, pa.string())])


def teacher_batch(table: pa.Table) -> pa.Table:
    """Ray Data UDF: (task, valid, n) of a batch's teacher examples (`label_source` teacher)."""
    mine = table.filter(pc.fill_null(pc.equal(table[schema.LABEL_SOURCE], schema.TEACHER), False))
    invalid = pc.fill_null(pc.equal(mine[schema.REJECT_REASON], INVALID_TEACHER_OUTPUT), False) if schema.REJECT_REASON in mine.column_names \
        else pa.array(np.zeros(mine.num_rows, dtype=bool))
    t = pa.table({"task": mine["task"], "valid": pc.invert(invalid), "n": pa.array(np.ones(mine.num_rows, dtype=np.int64))})
    g = t.group_by(["task", "valid"]).aggregate([("n", "sum")])
    return pa.table({"task": g["task"], "valid": g["valid"], "n": g["n_sum"]})


def teacher_validity(sft) -> dict[str, dict]:
    """{teacher task: {requests, valid, validity_rate}}. Empty without teacher examples."""
    acc: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for t in sft.map_batches(teacher_batch, batch_format="pyarrow").iter_batches(batch_format="pyarrow", batch_size=None):
        for r in t.to_pylist():
            acc[r["task"]][0] += r["n"]
            acc[r["task"]][1] += r["n"] * bool(r["valid"])
    return {task: {"requests": n, "valid": v, "validity_rate": round(v / n, 4)} for task, (n, v) in sorted(acc.items()) if n}


def outputs_batch(table: pa.Table, tasks: list[str]) -> pa.Table:
    """Ray Data UDF: (task, source_id, teacher_output) of the valid, kept teacher examples of `tasks`
    (the output is the assistant turn)."""
    keep = pc.and_(pc.fill_null(pc.equal(table[schema.LABEL_SOURCE], schema.TEACHER), False),
                   pc.is_in(table["task"], pa.array(tasks, pa.string())))
    if schema.REJECT_REASON in table.column_names:
        keep = pc.and_(keep, pc.is_null(table[schema.REJECT_REASON]))
    t = table.filter(keep)
    out = [next((m["content"] for m in reversed(msgs) if m["role"] == "assistant"), "") for msgs in t["messages"].to_pylist()]
    return pa.table({"task": t["task"], "source_id": t["source_id"], _OUT: pa.array(out, pa.string()),
                     _REF: pa.nulls(t.num_rows, pa.string())}, schema=_PAIR_SCHEMA)


def titles_batch(table: pa.Table, kinds: list[str]) -> pa.Table:
    """Ray Data UDF: (source_id, reference) = (id, title) of the curated records of `kinds` with a title."""
    title = table[schema.TITLE] if schema.TITLE in table.column_names else pa.nulls(table.num_rows, pa.string())
    keep = pc.and_(pc.is_in(table[schema.KIND], pa.array(kinds, pa.string())), pc.fill_null(pc.greater(pc.utf8_length(title), 0), False))
    ids = table[schema.ID].filter(keep)
    return pa.table({"task": pa.nulls(len(ids), pa.string()), "source_id": ids, _OUT: pa.nulls(len(ids), pa.string()),
                     _REF: title.filter(keep)}, schema=_PAIR_SCHEMA)


def pair_batch(table: pa.Table) -> pa.Table:
    """One hash partition of outputs and titles (union, repartitioned by record id) -> the (task, output,
    reference) pairs of the outputs whose record has a title."""
    is_out = pc.is_valid(table["task"]).to_numpy(zero_copy_only=False)
    outs = table.filter(pa.array(is_out)).select(["task", "source_id", _OUT])
    refs = table.filter(pa.array(~is_out)).select(["source_id", _REF])
    if not outs.num_rows or not refs.num_rows:
        return pa.table({"task": pa.array([], pa.string()), _OUT: pa.array([], pa.string()), _REF: pa.array([], pa.string())})
    joined = outs.join(refs, keys="source_id", join_type="inner")
    return joined.select(["task", _OUT, _REF])


def pair_stats_batch(table: pa.Table) -> pa.Table:
    """Ray Data UDF: per task of a block of (output, reference) pairs, the pair count, summed ROUGE-L F1
    and summed sacrebleu chrF statistics (one row per task)."""
    from sacrebleu.metrics import CHRF

    from sft_ray.train.task_eval import rouge_l_f1

    chrf = CHRF()
    rows = {"task": [], "n": [], "rouge_l": [], "chrf_stats": []}
    if not table.num_rows:
        return pa.table({"task": pa.array([], pa.string()), "n": pa.array([], pa.int64()), "rouge_l": pa.array([], pa.float64()),
                         "chrf_stats": pa.array([], pa.list_(pa.int64()))})
    tasks, outs, refs = table["task"].to_pylist(), table[_OUT].to_pylist(), table[_REF].to_pylist()
    for task in sorted(set(tasks)):
        idx = [i for i, t in enumerate(tasks) if t == task]
        hyp, ref = [outs[i] or "" for i in idx], [refs[i] or "" for i in idx]
        stats = np.asarray(chrf._extract_corpus_statistics(hyp, [ref]), dtype=np.int64).sum(0)  # what corpus_score sums
        rows["task"].append(task)
        rows["n"].append(len(idx))
        rows["rouge_l"].append(float(sum(rouge_l_f1(h, r) for h, r in zip(hyp, ref))))
        rows["chrf_stats"].append(stats.tolist())
    return pa.table({"task": pa.array(rows["task"], pa.string()), "n": pa.array(rows["n"], pa.int64()),
                     "rouge_l": pa.array(rows["rouge_l"], pa.float64()), "chrf_stats": pa.array(rows["chrf_stats"], pa.list_(pa.int64()))})


def fold_pair_stats(tables) -> dict[str, dict]:
    """Partial rows -> {task: {reference, pairs, chrf, rougeL}} (0-100)."""
    from sacrebleu.metrics import CHRF

    acc: dict[str, list] = {}
    for t in tables:
        for r in t.to_pylist():
            a = acc.setdefault(r["task"], [0, 0.0, np.zeros(len(r["chrf_stats"]), dtype=np.int64)])
            a[0] += r["n"]
            a[1] += r["rouge_l"]
            a[2] += np.asarray(r["chrf_stats"], dtype=np.int64)
    chrf = CHRF()
    return {task: {"reference": "title", "pairs": n, "chrf": round(float(chrf._compute_score_from_stats(stats.tolist()).score), 2),
                   "rougeL": round(100.0 * rl / n, 2)} for task, (n, rl, stats) in sorted(acc.items()) if n}


def teacher_reference_scores(sft, curated, teacher_cfg, num_partitions: int) -> dict[str, dict]:
    """chrF / ROUGE-L of the free-text teacher tasks' valid outputs against the records' titles (module docstring)."""
    text_tasks = {name: t for name, t in teacher_cfg.tasks.items() if t.output == "text"}
    if not text_tasks:
        return {}
    kinds = sorted({k for t in text_tasks.values() for k in t.kinds})
    outputs = sft.map_batches(outputs_batch, batch_format="pyarrow", fn_kwargs={"tasks": sorted(text_tasks)})
    titles = curated.map_batches(titles_batch, batch_format="pyarrow", fn_kwargs={"kinds": kinds})
    merged = by_key(outputs.union(titles), max(1, num_partitions), ["source_id"])
    pairs = merged.map_batches(pair_batch, batch_format="pyarrow", batch_size=None)
    return fold_pair_stats(pairs.map_batches(pair_stats_batch, batch_format="pyarrow").iter_batches(batch_format="pyarrow", batch_size=None))


def teacher_eval(sft, curated, teacher_cfg, num_partitions: int) -> dict[str, dict]:
    """`manifest["sft"]["teacher_eval"]`: per teacher task, validity and (free-text tasks with titled records) chrF / ROUGE-L."""
    out = teacher_validity(sft)
    for task, scores in teacher_reference_scores(sft, curated, teacher_cfg, num_partitions).items():
        out.setdefault(task, {})["reference_scores"] = scores
    return out
