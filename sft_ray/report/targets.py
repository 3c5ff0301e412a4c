"""The report's "Label targets" section: where each labelled task's targets came from and how right the
model's are (the manifest's `sft.label_sources`, `sft.label_eval`, `sft.teacher_eval`; format/evaluate.py)."""

from __future__ import annotations

import html

from sft_ray.report import plots

_REFERENCE = {"hidden": "gold labels the source withheld (meta.hidden_label, sources[].hide_labels)",
              "gold": "the records' own gold labels (the model's prediction beside the gold target)",
              "human": "human labels (labels/human.jsonl)"}


def _e(x) -> str:
    return html.escape(str(x))


def _f(x, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _rows(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_e(v)}</td>" for v in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def label_targets(sft: dict) -> str:
    """HTML of the section (a sentence when the build has no labelled or teacher targets)."""
    sources, evals, teacher = sft.get("label_sources") or {}, sft.get("label_eval") or {}, sft.get("teacher_eval") or {}
    if not (sources or evals or teacher):
        return "<p>No SFT examples (format off).</p>"
    out = ""
    if sources:
        out += ("<h3>Where the targets came from</h3><p>Kept SFT examples per task by <code>label_source</code>: gold from the "
                "source, human (Label Studio), model (a labeler's prediction at or above <code>format.min_label_confidence</code>), "
                "teacher (the LLM teacher).</p>")
        out += plots.stacked_hbar(sources, "SFT examples per task, by label source", "examples")
        kinds = list(dict.fromkeys(k for v in sources.values() for k in v))
        out += _rows(["task", *kinds, "all"], [[t, *[f"{v.get(k, 0):,}" for k in kinds], f"{sum(v.values()):,}"] for t, v in sources.items()])
    for task, ev in evals.items():
        out += _task(task, ev)
    if teacher:
        out += "<h3>LLM teacher: validity</h3><p>Share of the teacher's generations that parsed and validated (the others are <code>invalid_teacher_output</code> in sft/rejects/).</p>"
        out += _rows(["task", "requests", "valid", "validity rate"],
                     [[t, f"{v.get('requests', 0):,}", f"{v.get('valid', 0):,}", _f(v.get("validity_rate"))] for t, v in teacher.items()])
        scored = {t: v["reference_scores"] for t, v in teacher.items() if v.get("reference_scores")}
        if scored:
            out += ("<p>Free-text teacher outputs against the record's title, where it has one (corpus chrF, sacrebleu defaults; "
                    "mean ROUGE-L F1; 0-100).</p>")
            out += _rows(["task", "reference", "pairs", "chrF", "ROUGE-L"],
                         [[t, v["reference"], f"{v['pairs']:,}", f"{v['chrf']:.1f}", f"{v['rougeL']:.1f}"] for t, v in scored.items()])
    return out


def _task(task: str, ev: dict) -> str:
    noise = ev.get("noise") or {}
    out = f"<h3>{_e(task)}: targets from the {_e(ev['labeler'])} labeler</h3>"
    thr = ev.get("threshold")
    note = (f"threshold <code>format.min_label_confidence.{_e(task)}</code> = {_e(thr)}" if thr is not None
            else "model targets off (threshold null)")
    if noise.get("expected_noise_rate") is not None:
        ref = f" (accuracy at the threshold {_f(noise['accuracy_at_threshold'])} against {_e(noise['reference'])})" if noise.get("reference") else ""
        out += (f"<p>{note}. <b>Expected label noise of the {_e(task)} examples: {noise['expected_noise_rate']:.2%}</b>: "
                f"{noise['model_examples']:,} of {noise['examples']:,} kept examples are model labels{ref}, so about "
                f"{noise['expected_wrong_targets']:,} targets are expected wrong.</p>")
    else:
        out += f"<p>{note}. Expected label noise: unknown ({_e(noise.get('why', 'no reference'))}).</p>"
    if ev.get("seed_cv_accuracy") is not None:
        out += f"<p class=note>Held-out slice of the seed (cross-validation, label quality section): accuracy {_f(ev['seed_cv_accuracy'])}.</p>"
    refs = ev.get("references") or {}
    if not refs:
        out += "<p>No record has both the labeler's prediction and a reference label.</p>"
    for ref, m in refs.items():
        left = f"{m['seed_rows_left_out']:,} seed rows of the head left out" + (
            f", {m['unknown_class_rows']:,} with a label outside the labeler's classes" if m.get("unknown_class_rows") else "")
        out += f"<h4>{_e(task)} against {_e(_REFERENCE.get(ref, ref))}</h4>"
        if not m.get("rows"):
            out += f"<p>No scored rows ({left}).</p>"
            continue
        at = m.get("at_threshold")
        at_text = (f"; at the threshold {at['threshold']:g}: coverage {_f(at['coverage'])} ({at['rows']:,} rows), accuracy {_f(at['accuracy'])}"
                   if at else "")
        out += (f"<p>{m['rows']:,} rows ({left}). <b>accuracy {_f(m['accuracy'])}</b>, macro F1 {_f(m['macro_f1'])}, "
                f"ECE {_f(m['reliability']['ece'])}{at_text}.</p>")
        out += _rows(["class", "precision", "recall", "F1", "support"],
                     [[c, _f(v["precision"]), _f(v["recall"]), _f(v["f1"]), f"{v['support']:,}"] for c, v in m["per_class"].items()])
        out += "<div class=scores>" + plots.reliability(m["reliability"]["bins"], f"{task} vs {ref}: reliability")
        out += plots.coverage_accuracy(m["curve"], at, f"{task} vs {ref}: coverage and accuracy by threshold") + "</div>"
        out += f"<details><summary>{_e(task)} vs {_e(ref)}: reliability bins and curve</summary>"
        out += _rows(["confidence bin", "rows", "mean confidence", "accuracy"],
                     [[f"{b['lo']:.1f}–{b['hi']:.1f}", f"{b['count']:,}", _f(b["confidence"]), _f(b["accuracy"])] for b in m["reliability"]["bins"]])
        out += _rows(["threshold", "coverage", "rows", "accuracy"],
                     [[f"{p['threshold']:.2f}", _f(p["coverage"]), f"{p['rows']:,}", _f(p["accuracy"])] for p in m["curve"]])
        out += "</details>"
    return out
