"""How right the SFT set's labelled targets are: the labelers' predictions scored against gold they did not train on.

A classification or sentiment example may train on a model label (format/labels.py: gold > human >
model, model only at `format.min_label_confidence.<task>`). Wherever a record has both the labeler's
prediction with its score and a reference label, the prediction is scored against it:

    hidden   `meta.hidden_label`: the gold label a source withheld (`sources[].hide_labels`, ingest/records.py).
             The same kind of rows whose model labels become targets, so the noise estimate uses it first.
    gold     the record's own `label`: the target is the gold label there; the model's is scored beside it.
    human    `<output>/labels/human.jsonl` (label/human.py). Human-labelled rows join the head's seed set
             (label/stage.py fit_heads), so they are nearly always seed rows and left out below; the
             head's cross-validated accuracy over seed + human rows is `seed_cv_accuracy`.

Rows whose text is one of the head's seed texts (`<labeler>_seed` in `label_flags`) are left out and
counted: the head was fitted on them. A reference outside the labeler's classes is counted, not scored.
Only records of the kinds that have the task (`format.tasks`) are read.

Per (task, reference): accuracy, per-class precision/recall/F1 and the confusion matrix; a reliability
table over 10 equal-width confidence bins ([lo, hi), the last one closed) with the expected calibration
error (Guo et al. 2017, eq. 3); the coverage-accuracy curve over thresholds 0, 0.05, ..., 1 (coverage =
share of rows with score >= t, accuracy over those rows) and the same at the configured threshold,
which is the accuracy of the model targets the SFT set holds. The expected label-noise rate of a task's
examples is (1 - that accuracy) x the share of its kept examples whose target is a model label
(`sft.label_sources`).

Bounded memory (docs/ARCHITECTURE.md, "Scale"): each block becomes a small table of counts per
(task, reference, status, gold, predicted, score bin on a 0.01 grid, above threshold) with the scores'
sum, at most tasks x references x classes^2 x 101 x 2 rows whatever the block's size; the driver folds
them batch by batch. No record reaches the driver.

The LLM teacher's outputs are judged in format/teacher_eval.py.
"""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sft_ray import schema
from sft_ray.format.labels import TASK_LABELER

HIDDEN, GOLD, HUMAN = "hidden", "gold", "human"
REFERENCES = (HIDDEN, GOLD, HUMAN)  # also the preference for the noise estimate (module docstring)
SCORED, SEED, UNKNOWN_CLASS = "scored", "seed", "unknown_class"
GRID = np.round(np.arange(101) / 100, 2)  # score bins: bin k holds GRID[k] <= score < GRID[k + 1]
CURVE_STEP = 5  # curve points every 5 grid steps: thresholds 0, 0.05, ..., 1
RELIABILITY_BINS = 10

PARTIAL_SCHEMA = pa.schema([
    pa.field("task", pa.string()), pa.field("reference", pa.string()), pa.field("status", pa.string()),
    pa.field("gold", pa.string()), pa.field("pred", pa.string()), pa.field("bin", pa.int16()),
    pa.field("above", pa.bool_()), pa.field("n", pa.int64()), pa.field("conf", pa.float64()),
])
_KEYS = ["task", "reference", "status", "gold", "pred", "bin", "above"]


# ------------------------------------------------------------------------------------------ per block
def partial_counts(task: str, reference: str, gold, pred, score, seed=None, classes: list[str] | None = None,
                   threshold: float | None = None) -> pa.Table:
    """PARTIAL_SCHEMA rows for aligned arrays of one (task, reference): every row has a gold and a
    predicted label and a score. `seed`: rows the head was fitted on (left out, counted); `classes`:
    the labeler's classes (a gold label outside them is counted, not scored); `threshold`: the
    configured minimum score of a model target (None: model targets off)."""
    gold, pred = _string_array(gold), _string_array(pred)
    score = np.asarray(score, dtype=np.float64)
    n = len(score)
    if n == 0:
        return PARTIAL_SCHEMA.empty_table()
    seed = np.zeros(n, dtype=bool) if seed is None else np.asarray(seed, dtype=bool)
    known = np.ones(n, dtype=bool) if classes is None else pc.is_in(gold, pa.array(classes, pa.string())).to_numpy(zero_copy_only=False)
    status = np.where(seed, SEED, np.where(known, SCORED, UNKNOWN_CLASS))
    bins = np.clip(np.searchsorted(GRID, score, side="right") - 1, 0, len(GRID) - 1).astype(np.int16)
    above = score >= threshold if threshold is not None else np.zeros(n, dtype=bool)
    t = pa.table({"task": pa.array([task] * n, pa.string()), "reference": pa.array([reference] * n, pa.string()),
                  "status": pa.array(status, pa.string()), "gold": gold, "pred": pred, "bin": pa.array(bins, pa.int16()),
                  "above": pa.array(above, pa.bool_()), "n": pa.array(np.ones(n, dtype=np.int64)), "conf": pa.array(score)})
    g = t.group_by(_KEYS).aggregate([("n", "sum"), ("conf", "sum")])
    return pa.table({**{k: g[k] for k in _KEYS}, "n": g["n_sum"], "conf": g["conf_sum"]}, schema=PARTIAL_SCHEMA)


def _string_array(values) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        return values.combine_chunks().cast(pa.string())
    return values.cast(pa.string()) if isinstance(values, pa.Array) else pa.array(values, pa.string())


def hidden_labels(table: pa.Table) -> pa.Array:
    """`meta.hidden_label` per row (null where none): only the rows whose meta mentions it are parsed."""
    if schema.META not in table.column_names:
        return pa.nulls(table.num_rows, pa.string())
    meta = table[schema.META]
    has = pc.fill_null(pc.match_substring(meta, '"hidden_label"'), False).to_numpy(zero_copy_only=False)
    out: list[str | None] = [None] * table.num_rows
    rows = np.flatnonzero(has)
    for i, text in zip(rows, meta.take(pa.array(rows, pa.int64())).to_pylist()):
        value = json.loads(text).get("hidden_label")
        out[i] = None if value is None else str(value)
    return pa.array(out, pa.string())


def eval_batch(table: pa.Table, specs: dict[str, dict], human: dict[str, dict[str, str]] | None = None) -> pa.Table:
    """Ray Data UDF: curated records -> PARTIAL_SCHEMA counts. `specs`: task -> {labeler, kinds,
    classes, threshold} (target_specs); `human`: labeler -> {record id: label} (label/human.py)."""
    parts = [PARTIAL_SCHEMA.empty_table()]
    human = human or {}
    hidden = None
    for task, spec in specs.items():
        lab = spec["labeler"]
        if lab not in table.column_names or table.num_rows == 0:
            continue
        base = pc.and_(pc.and_(pc.is_valid(table[lab]), pc.is_valid(table[f"{lab}_score"])),
                       pc.is_in(table[schema.KIND], pa.array(spec["kinds"], pa.string())))
        if not pc.any(base).as_py():
            continue
        hidden = hidden_labels(table) if hidden is None else hidden
        gold = table[schema.LABEL] if schema.LABEL in table.column_names else pa.nulls(table.num_rows, pa.string())
        gold = pc.if_else(pc.equal(gold, ""), pa.scalar(None, pa.string()), gold)
        by_person = human.get(lab) or {}
        person = pa.nulls(table.num_rows, pa.string())
        if by_person:  # record id -> human label, looked up as an index into the labels
            at = pc.index_in(table[schema.ID], value_set=pa.array(list(by_person), pa.string()))
            person = pa.array(list(by_person.values()), pa.string()).take(at)
        flags = table[schema.LABEL_FLAGS] if schema.LABEL_FLAGS in table.column_names else pa.nulls(table.num_rows, pa.string())
        seed = pc.fill_null(pc.match_substring_regex(flags, f"(^|,){schema.seed_flag(lab)}(,|$)"), False)
        for reference, ref in ((HIDDEN, hidden), (GOLD, gold), (HUMAN, person)):
            mask = pc.and_(base, pc.is_valid(ref))
            if not pc.any(mask).as_py():
                continue
            parts.append(partial_counts(
                task, reference, ref.filter(mask), table[lab].filter(mask),
                table[f"{lab}_score"].filter(mask).to_numpy(zero_copy_only=False), seed.filter(mask).to_numpy(zero_copy_only=False),
                spec.get("classes"), spec.get("threshold")))
    return pa.concat_tables(parts)


# ------------------------------------------------------------------------------------------ on the driver
def fold(tables) -> dict[tuple[str, str], list[dict]]:
    """Partial tables (any number, any order) -> (task, reference) -> cells with summed n and conf."""
    acc: dict[tuple, list] = defaultdict(lambda: [0, 0.0])
    for t in tables:
        for r in t.to_pylist():
            cell = acc[tuple(r[k] for k in _KEYS)]
            cell[0] += r["n"]
            cell[1] += r["conf"]
    out: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for key, (n, conf) in sorted(acc.items(), key=lambda kv: tuple("" if v is None else str(v) for v in kv[0])):
        r = dict(zip(_KEYS, key))
        out[(r["task"], r["reference"])].append({**r, "n": n, "conf": conf})
    return dict(out)


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def summarize(cells: list[dict], threshold: float | None, classes: list[str] | None = None) -> dict:
    """The metrics of one (task, reference) from its folded cells (module docstring)."""
    scored = [c for c in cells if c["status"] == SCORED]
    out = {"rows": sum(c["n"] for c in scored),
           "seed_rows_left_out": sum(c["n"] for c in cells if c["status"] == SEED),
           "unknown_class_rows": sum(c["n"] for c in cells if c["status"] == UNKNOWN_CLASS)}
    n = out["rows"]
    if not n:
        return {**out, "accuracy": None}
    names = list(classes or []) + sorted({c[k] for c in scored for k in ("gold", "pred")} - set(classes or []))
    idx = {name: i for i, name in enumerate(names)}
    k = len(names)
    confusion = np.zeros((k, k), dtype=np.int64)
    by_bin = np.zeros((len(GRID), 3))  # rows, correct, summed confidence per 0.01 bin
    above = np.zeros(2, dtype=np.int64)  # rows, correct at the configured threshold
    for c in scored:
        right = c["gold"] == c["pred"]
        confusion[idx[c["gold"]], idx[c["pred"]]] += c["n"]
        by_bin[c["bin"]] += (c["n"], c["n"] * right, c["conf"])
        if c["above"]:
            above += (c["n"], c["n"] * right)
    correct = int(np.trace(confusion))
    per_class = {}
    for i, name in enumerate(names):
        tp, n_pred, n_gold = int(confusion[i, i]), int(confusion[:, i].sum()), int(confusion[i].sum())
        p, r = (tp / n_pred if n_pred else 0.0), (tp / n_gold if n_gold else 0.0)
        per_class[name] = {"precision": _r(p), "recall": _r(r), "f1": _r(2 * p * r / (p + r) if p + r else 0.0), "support": n_gold}
    with_support = [m["f1"] for m in per_class.values() if m["support"]]
    bins, ece = [], 0.0
    width = (len(GRID) - 1) // RELIABILITY_BINS
    for b in range(RELIABILITY_BINS):
        lo, hi = b * width, (b + 1) * width + (1 if b == RELIABILITY_BINS - 1 else 0)  # the last bin includes 1.0
        rows, right, conf = by_bin[lo:hi].sum(0)
        mean_conf, acc = (conf / rows, right / rows) if rows else (None, None)
        if rows:
            ece += rows / n * abs(acc - mean_conf)
        bins.append({"lo": float(GRID[lo]), "hi": float(GRID[min(hi, len(GRID) - 1)]), "count": int(rows),
                     "confidence": _r(mean_conf), "accuracy": _r(acc)})
    tail = by_bin[::-1].cumsum(0)[::-1]  # rows and correct with score >= GRID[i]
    curve = [{"threshold": float(GRID[i]), "coverage": _r(tail[i, 0] / n), "rows": int(tail[i, 0]),
              "accuracy": _r(tail[i, 1] / tail[i, 0]) if tail[i, 0] else None} for i in range(0, len(GRID), CURVE_STEP)]
    at = None
    if threshold is not None:
        at = {"threshold": threshold, "coverage": _r(above[0] / n), "rows": int(above[0]),
              "accuracy": _r(above[1] / above[0]) if above[0] else None}
    return {**out, "accuracy": _r(correct / n), "macro_f1": _r(sum(with_support) / len(with_support)) if with_support else None,
            "per_class": per_class, "confusion": {"labels": names, "matrix": confusion.tolist()},
            "reliability": {"bins": bins, "ece": _r(ece)}, "curve": curve, "at_threshold": at}


def noise_estimate(references: dict[str, dict], sources: dict[str, int]) -> dict:
    """Expected share of a task's kept examples whose target is wrong because a model label was wrong:
    (1 - accuracy at the threshold) x model examples / all examples, from the first reference of
    REFERENCES with rows above the threshold. `sources`: the task's `sft.label_sources`."""
    examples, model = sum(sources.values()), sources.get(schema.MODEL, 0)
    out = {"examples": examples, "model_examples": model, "model_share": _r(model / examples) if examples else 0.0}
    if not model:
        return {**out, "reference": None, "accuracy_at_threshold": None, "expected_noise_rate": 0.0, "expected_wrong_targets": 0.0}
    for ref in REFERENCES:
        at = (references.get(ref) or {}).get("at_threshold") or {}
        if at.get("accuracy") is not None:
            wrong = 1 - at["accuracy"]
            return {**out, "reference": ref, "reference_rows": at["rows"], "accuracy_at_threshold": at["accuracy"],
                    "expected_noise_rate": _r(wrong * model / examples), "expected_wrong_targets": round(wrong * model, 1)}
    return {**out, "reference": None, "accuracy_at_threshold": None, "expected_noise_rate": None, "expected_wrong_targets": None,
            "why": "no reference label on a non-seed row above the threshold (hide_labels, gold labels or human labels give one)"}


def target_specs(format_cfg, label_enabled: dict[str, bool], model_options: dict[str, list[str]]) -> dict[str, dict]:
    """task -> {labeler, kinds, classes, threshold} for the labelled tasks whose labeler ran (`label_enabled`:
    labeler -> fitted) on some kind that has the task in `format.tasks`."""
    specs = {}
    for task, lab in TASK_LABELER.items():
        kinds = sorted(kind for kind, tasks in format_cfg.tasks.items() if task in tasks)
        if kinds and label_enabled.get(lab):
            specs[task] = {"labeler": lab, "kinds": kinds, "classes": list(model_options.get(lab) or []) or None,
                           "threshold": getattr(format_cfg.min_label_confidence, task)}
    return specs


def evaluate_targets(curated, specs: dict[str, dict], human: dict[str, dict[str, str]], label_sources: dict[str, dict[str, int]],
                     label_info: dict | None = None) -> dict:
    """`manifest["sft"]["label_eval"]`: per task, the metrics per reference and the expected noise rate.
    `curated`: the written curated records (a Ray Dataset); `label_info`: the manifest's `label` (heads)."""
    if not specs:
        return {}
    parts = curated.map_batches(eval_batch, batch_format="pyarrow", fn_kwargs={"specs": specs, "human": human})
    folded = fold(parts.iter_batches(batch_format="pyarrow", batch_size=None))
    out = {}
    for task, spec in specs.items():
        refs = {ref: summarize(folded[(task, ref)], spec["threshold"], spec["classes"]) for ref in REFERENCES if (task, ref) in folded}
        info = (label_info or {}).get(spec["labeler"]) or {}
        out[task] = {"labeler": spec["labeler"], "threshold": spec["threshold"], "kinds": spec["kinds"],
                     "seed_cv_accuracy": info.get("cv_accuracy"), "references": refs,
                     "label_sources": label_sources.get(task, {}), "noise": noise_estimate(refs, label_sources.get(task, {}))}
    return out
