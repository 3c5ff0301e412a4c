"""Count everything (docs/ARCHITECTURE.md, principle 2): per source, per stage and reason, per split and task.

Counting runs as a Ray Data map over blocks that returns one tiny row per group; only those rows
reach the driver, never the records themselves.
"""

from __future__ import annotations

import functools
import json
from collections import Counter, defaultdict
from collections.abc import Iterable

import pyarrow as pa
import ray

from sft_ray import schema
from sft_ray.report.aggregates import bin_index, log_edges

KEPT = "kept"


_GROUP_SCHEMA = pa.schema(
    [("source", pa.string()), ("stage", pa.string()), ("reason", pa.string()), ("label", pa.string()), ("pii", pa.string()),
     ("contaminated_by", pa.string()), ("n", pa.int64())]
)


def record_groups(table: pa.Table) -> pa.Table:
    """Per block: one row per (source, stage, reason, label), plus one per (source, PII type) of kept
    records and one per evaluation set that contaminated records (dedup/contamination.py)."""
    cols = [table[c].to_pylist() for c in (schema.SOURCE, schema.REJECT_STAGE, schema.REJECT_REASON, schema.LABEL)]
    c = Counter(zip(*cols))
    rows = [{"source": s, "stage": st or KEPT, "reason": r or KEPT, "label": (lb if not r else None), "n": n} for (s, st, r, lb), n in c.items()]
    contaminated = Counter(d for r, d in zip(cols[2], table[schema.DUPLICATE_OF].to_pylist()) if r == "contaminated")
    rows += [{"contaminated_by": d, "n": n} for d, n in contaminated.items()]
    pii: Counter = Counter()
    for s, r, p in zip(cols[0], cols[2], table[schema.PII].to_pylist()):
        if p and not r:
            for typ, n in json.loads(p).items():
                pii[(s, typ)] += n
    rows += [{"source": s, "pii": t, "n": n} for (s, t), n in pii.items()]
    return pa.Table.from_pylist(rows, schema=_GROUP_SCHEMA)


def record_counts(records: ray.data.Dataset) -> dict:
    """Totals that must satisfy input = kept + rejected, broken down by source, stage and reason;
    plus PII placeholders put into kept records, per type and source."""
    return count_groups(records.map_batches(record_groups, batch_format="pyarrow").take_all())


def count_groups(rows: list[dict]) -> dict:
    """record_counts' totals from the per-block rows of `record_groups` (here or in write.py's one pass)."""
    by_source: dict = defaultdict(lambda: {"input": 0, "kept": 0, "rejected": 0})
    by_stage: dict = defaultdict(Counter)
    by_source_stage: dict = defaultdict(lambda: defaultdict(Counter))
    labels: dict = defaultdict(Counter)
    pii_by_type: Counter = Counter()
    pii_by_source: dict = defaultdict(Counter)
    contaminated_by: Counter = Counter()
    for r in rows:
        if r["contaminated_by"] is not None:
            contaminated_by[r["contaminated_by"]] += r["n"]
            continue
        if r["pii"] is not None:
            pii_by_type[r["pii"]] += r["n"]
            pii_by_source[r["source"]][r["pii"]] += r["n"]
            continue
        src = by_source[r["source"]]
        src["input"] += r["n"]
        if r["stage"] == KEPT:
            src["kept"] += r["n"]
            if r["label"] is not None:
                labels[r["source"]][r["label"]] += r["n"]
        else:
            src["rejected"] += r["n"]
            by_stage[r["stage"]][r["reason"]] += r["n"]
            by_source_stage[r["source"]][r["stage"]][r["reason"]] += r["n"]
    total_in = sum(s["input"] for s in by_source.values())
    kept = sum(s["kept"] for s in by_source.values())
    return {
        "input": total_in,
        "kept": kept,
        "rejected": total_in - kept,
        "by_source": {k: dict(v) for k, v in sorted(by_source.items())},
        "by_stage": {k: dict(sorted(v.items())) for k, v in sorted(by_stage.items())},
        "by_source_stage": {s: {k: dict(sorted(v.items())) for k, v in sorted(st.items())} for s, st in sorted(by_source_stage.items())},
        "labels": {k: dict(sorted(v.items())) for k, v in sorted(labels.items())},
        "contaminated_by": dict(sorted(contaminated_by.items())),
        "pii_redacted": {"by_type": dict(sorted(pii_by_type.items())), "by_source": {k: dict(sorted(v.items())) for k, v in sorted(pii_by_source.items())}},
    }


_SFT_GROUP_SCHEMA = pa.schema([("split", pa.string()), ("task", pa.string()), ("source", pa.string()), ("reason", pa.string()),
                               ("n", pa.int64()), ("tokens", pa.int64()), ("sample_id", pa.string()), ("sample", pa.string()),
                               ("bin", pa.int64()), ("label", pa.string()), ("prompt", pa.int64()), ("response", pa.int64())])
# Tasks whose assistant answer is a label (format/templates.py): their answers are the SFT set's label balance.
LABEL_TASKS = ("classification", "sentiment")
LABEL_CHARS = 60  # a longer answer is cut (a label is a word or two)
# Prompt and response lengths are measured on a bounded sample: the `LENGTH_SAMPLE_PER_BLOCK` kept
# examples of smallest id hash per block, and the `LENGTH_SAMPLE` smallest overall (report/sample.py).
LENGTH_SAMPLE_PER_BLOCK = 32
LENGTH_SAMPLE = 2000
# Token-length histogram bins of SFT examples (the report's "tokens" histogram): 0, 1, 2, 5, 10, 20, ...
TOKEN_EDGES = log_edges(100_000)


@functools.lru_cache(maxsize=2)
def _tokenizer(path: str):
    """Loaded once per worker process (Ray reuses workers across tasks)."""
    from sft_ray.models import load_tokenizer

    return load_tokenizer(path)


def _num_tokens(messages: list[dict], tokenizer_path: str | None) -> int:
    """Tokens the model will see (its chat template applied); whitespace words without a tokenizer."""
    if tokenizer_path is None:
        return sum(len(m["content"].split()) for m in messages)
    ids = _tokenizer(tokenizer_path).apply_chat_template(messages, tokenize=True)
    return len(ids["input_ids"] if isinstance(ids, dict) or hasattr(ids, "keys") else ids)


def _text_tokens(text: str, tokenizer_path: str | None) -> int:
    """Tokens of a plain text (no chat template); whitespace words without a tokenizer."""
    if tokenizer_path is None:
        return len(text.split())
    return len(_tokenizer(tokenizer_path)(text, add_special_tokens=False)["input_ids"])


def _prompt_response(messages: list[dict], tokenizer_path: str | None) -> tuple[int, int]:
    """(prompt, response) lengths: the assistant turns are the response, every other turn the prompt."""
    prompt = "\n".join(m["content"] for m in messages if m["role"] != "assistant")
    response = "\n".join(m["content"] for m in messages if m["role"] == "assistant")
    return _text_tokens(prompt, tokenizer_path), _text_tokens(response, tokenizer_path)


def _sft_extra(table: pa.Table, reasons: list, tokenizer_path: str | None, count_tokens: bool) -> list[dict]:
    """Per block: label answers of LABEL_TASKS (kept examples, counted exactly) and prompt/response
    lengths of a bounded sample of kept examples (rank = id hash; n carries the rank)."""
    import numpy as np

    from sft_ray.report.sample import ranks

    rows: list[dict] = []
    tasks, splits = table["task"].to_pylist(), table["split"].to_pylist()
    live = np.array([r is None for r in reasons], dtype=bool)
    lab = [i for i in np.flatnonzero(live).tolist() if tasks[i] in LABEL_TASKS]
    if lab:
        msgs = table["messages"].take(pa.array(lab, pa.int64())).to_pylist()
        answers = [next((m["content"] for m in reversed(ms) if m["role"] == "assistant"), "")[:LABEL_CHARS] for ms in msgs]
        c = Counter((tasks[i], splits[i], a) for i, a in zip(lab, answers))
        rows += [{"task": t, "split": sp, "label": a, "n": n} for (t, sp, a), n in c.items()]
    if count_tokens and live.any():
        rank = ranks(table[schema.ID])
        idx = np.flatnonzero(live)
        idx = idx[np.argsort(rank[idx], kind="stable")[:LENGTH_SAMPLE_PER_BLOCK]]
        msgs = table["messages"].take(pa.array(idx, pa.int64())).to_pylist()
        for i, ms in zip(idx.tolist(), msgs):
            p, r = _prompt_response(ms, tokenizer_path)
            rows.append({"task": tasks[i], "split": splits[i], "n": int(rank[i]), "prompt": p, "response": r,
                         "tokens": _num_tokens(ms, tokenizer_path)})  # the whole example, as the model sees it
    return rows


def sft_groups(table: pa.Table, tokenizer_path: str | None = None, count_tokens: bool = False) -> pa.Table:
    reasons = table[schema.REJECT_REASON].to_pylist() if schema.REJECT_REASON in table.column_names else [None] * table.num_rows
    keys = list(zip(table["split"].to_pylist(), table["task"].to_pylist(), table[schema.SOURCE].to_pylist(), reasons))
    c = Counter(keys)
    tokens: Counter = Counter()
    lengths: dict[str, list[int]] = defaultdict(list)  # split -> tokens per kept example
    firsts: dict[str, tuple[str, str]] = {}
    for key, ex_id, msgs in zip(keys, table[schema.ID].to_pylist(), table["messages"].to_pylist()):
        task, r = key[1], key[3]
        if count_tokens and r is None:
            n = _num_tokens(msgs, tokenizer_path)
            tokens[key] += n
            lengths[key[0]].append(n)
        if r is None and (task not in firsts or ex_id < firsts[task][0]):
            firsts[task] = (ex_id, json.dumps(msgs, ensure_ascii=False))
    rows = [{"split": sp, "task": t, "source": src, "reason": r, "n": n, "tokens": tokens[(sp, t, src, r)]} for (sp, t, src, r), n in c.items()]
    rows += [{"task": t, "n": 0, "sample_id": i, "sample": m} for t, (i, m) in firsts.items()]
    rows += [{"split": sp, "n": n, "bin": b} for sp, ls in lengths.items()
             for b, n in Counter(bin_index(pa.array(ls, pa.int64()), TOKEN_EDGES)).items()]
    rows += _sft_extra(table, reasons, tokenizer_path, count_tokens)
    return pa.Table.from_pylist(rows, schema=_SFT_GROUP_SCHEMA)


def sft_counts(sft: ray.data.Dataset, tokenizer: tuple[str | None, str] | None = None) -> tuple[dict, list[dict]]:
    """Examples per split and task, examples removed (SFT dedup, task mix, teacher; `generated` =
    train + validation + removed), kept tokens per task and split when `tokenizer` = (path or None
    for whitespace words, what to call the unit) is given, and one deterministic sample per task."""
    path = tokenizer[0] if tokenizer else None
    return fold_sft_groups(sft.map_batches(sft_groups, batch_format="pyarrow", fn_kwargs={"tokenizer_path": path, "count_tokens": tokenizer is not None}).take_all(), tokenizer)


def fold_sft_groups(rows: Iterable[dict], tokenizer: tuple[str | None, str] | None = None) -> tuple[dict, list[dict]]:
    """sft_counts' result from the per-block rows of `sft_groups` (also gathered by write_sft.py's one pass)."""
    unit = tokenizer[1] if tokenizer else ""
    out: dict = {"generated": 0, "train": 0, "validation": 0, "removed": Counter(), "by_task": defaultdict(Counter), "by_source": defaultdict(Counter)}
    tokens: dict = defaultdict(Counter)
    samples: dict[str, tuple[str, str]] = {}
    hist: dict = defaultdict(Counter)
    label_balance: dict = defaultdict(lambda: defaultdict(Counter))
    removed_by_source: dict = defaultdict(Counter)
    lengths: list[tuple[int, dict]] = []
    for r in rows:
        if r["label"] is not None:
            label_balance[r["task"]][r["split"]][r["label"]] += r["n"]
            continue
        if r["prompt"] is not None:
            lengths.append((r["n"], {"task": r["task"], "split": r["split"], "prompt": r["prompt"], "response": r["response"],
                                     "example": r["tokens"]}))
            if len(lengths) > 4 * LENGTH_SAMPLE:  # bounded: only the smallest ranks can stay
                lengths = sorted(lengths, key=lambda x: x[0])[:LENGTH_SAMPLE]
            continue
        if r["bin"] is not None:
            hist[r["split"]][r["bin"]] += r["n"]
            continue
        if r["sample_id"] is not None:
            if r["task"] not in samples or r["sample_id"] < samples[r["task"]][0]:
                samples[r["task"]] = (r["sample_id"], r["sample"])
            continue
        out["generated"] += r["n"]
        if r["reason"] is not None:
            out["removed"][r["reason"]] += r["n"]
            out["by_task"][r["task"]][r["reason"]] += r["n"]
            removed_by_source[r["source"]][r["reason"]] += r["n"]
            continue
        out[r["split"]] += r["n"]
        tokens[r["task"]][r["split"]] += r["tokens"]
        out["by_task"][r["task"]][r["split"]] += r["n"]
        out["by_source"][r["source"]][r["split"]] += r["n"]
    out["removed"] = dict(sorted(out["removed"].items()))
    if tokenizer is not None:
        per_split = {sp: sum(by.get(sp, 0) for by in tokens.values()) for sp in sorted(hist)}
        out["tokens"] = {"unit": unit, "by_task": {k: dict(v) for k, v in sorted(tokens.items())},
                         "hist": {"edges": TOKEN_EDGES, "columns": {
                             sp: {"counts": [h.get(i, 0) for i in range(len(TOKEN_EDGES))], "records": sum(h.values()),
                                  "mean": round(per_split[sp] / sum(h.values()), 2) if h else 0.0}
                             for sp, h in sorted(hist.items())}}}
        out["prompt_response"] = prompt_response([x for _, x in sorted(lengths, key=lambda x: x[0])[:LENGTH_SAMPLE]], unit)
    out["by_task"] = {k: dict(v) for k, v in sorted(out["by_task"].items())}
    out["by_source"] = {k: dict(v) for k, v in sorted(out["by_source"].items())}
    out["removed_by_source"] = {k: dict(sorted(v.items())) for k, v in sorted(removed_by_source.items())}
    out["label_balance"] = {t: {sp: dict(c.most_common()) for sp, c in sorted(by.items())} for t, by in sorted(label_balance.items())}
    return out, [{"task": t, "id": i, "messages": json.loads(m)} for t, (i, m) in sorted(samples.items())]


def prompt_response(sample: list[dict], unit: str) -> dict:
    """Prompt, response and whole-example lengths (the example with its chat template, as the tokens
    histogram counts it) of the sampled kept examples: percentiles and TOKEN_EDGES histograms,
    overall and per task (report/sample.py's percentiles)."""
    from sft_ray.report.sample import percentiles

    def summary(xs: list[dict]) -> dict:
        return {side: {**percentiles([x[side] for x in xs]),
                       "counts": [Counter(bin_index(pa.array([x[side] for x in xs], pa.int64()), TOKEN_EDGES)).get(i, 0)
                                  for i in range(len(TOKEN_EDGES))] if xs else []}
                for side in ("prompt", "response", "example")}

    tasks = sorted({x["task"] for x in sample})
    return {"unit": unit, "sampled": len(sample), "per_block": LENGTH_SAMPLE_PER_BLOCK, "size": LENGTH_SAMPLE, "edges": TOKEN_EDGES,
            "all": summary(sample), "by_task": {t: summary([x for x in sample if x["task"] == t]) for t in tasks}}
