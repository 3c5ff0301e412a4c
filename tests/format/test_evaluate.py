"""format/evaluate.py: the model targets' metrics on hand-made arrays (exact values), the per-block
counts on a records table (hidden / gold / human references, seed rows, kinds), the noise estimate,
the teacher's validity, the report section, and the margin column behind `label export`."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from sft_ray import schema
from sft_ray.config import FormatConfig
from sft_ray.format.evaluate import (
    eval_batch,
    fold,
    hidden_labels,
    noise_estimate,
    partial_counts,
    summarize,
    target_specs,
)
from sft_ray.format.teacher_eval import fold_pair_stats, pair_stats_batch, teacher_batch
from sft_ray.label.classifier import LinearHead
from sft_ray.report.targets import label_targets

GOLD = ["a", "a", "b", "b", "a", "b", "a", "b"]
PRED = ["a", "b", "b", "b", "a", "a", "a", "b"]
SCORE = [0.95, 0.55, 0.85, 0.65, 0.75, 0.45, 0.9, 1.0]


def _metrics(gold=GOLD, pred=PRED, score=SCORE, threshold=0.7, classes=("a", "b"), seed=None, split_at=None):
    """Through the real path: per-block partial counts (optionally in two blocks), folded, summarised."""
    cut = split_at or len(score)
    parts = [partial_counts("classification", "hidden", gold[:cut], pred[:cut], score[:cut], None if seed is None else seed[:cut],
                            list(classes), threshold)]
    if cut < len(score):
        parts.append(partial_counts("classification", "hidden", gold[cut:], pred[cut:], score[cut:],
                                    None if seed is None else seed[cut:], list(classes), threshold))
    return summarize(fold(parts)[("classification", "hidden")], threshold, list(classes))


def test_accuracy_per_class_reliability_and_curve_exact():
    m = _metrics()
    assert m["rows"] == 8 and m["accuracy"] == 0.75 and m["macro_f1"] == 0.75
    assert m["per_class"]["a"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    assert m["confusion"] == {"labels": ["a", "b"], "matrix": [[3, 1], [1, 3]]}
    bins = {b["lo"]: b for b in m["reliability"]["bins"]}
    assert len(bins) == 10 and bins[0.4] == {"lo": 0.4, "hi": 0.5, "count": 1, "confidence": 0.45, "accuracy": 0.0}
    assert bins[0.9] == {"lo": 0.9, "hi": 1.0, "count": 3, "confidence": 0.95, "accuracy": 1.0}  # 1.0 falls in the last bin
    # ECE = (0.45 + 0.45 + 0.35 + 0.25 + 0.15 + 3 x 0.05) / 8
    assert m["reliability"]["ece"] == pytest.approx(0.2375)
    curve = {p["threshold"]: p for p in m["curve"]}
    assert len(curve) == 21 and curve[0.0] == {"threshold": 0.0, "coverage": 1.0, "rows": 8, "accuracy": 0.75}
    assert curve[0.55] == {"threshold": 0.55, "coverage": 0.875, "rows": 7, "accuracy": 0.8571}  # a score equal to t counts
    assert curve[0.6]["accuracy"] == 1.0 and curve[1.0]["rows"] == 1
    assert m["at_threshold"] == {"threshold": 0.7, "coverage": 0.625, "rows": 5, "accuracy": 1.0}
    assert _metrics(split_at=3) == m  # blocks fold to the same numbers


def test_threshold_off_grid_seed_rows_and_unknown_classes():
    m = _metrics(threshold=0.62)
    assert m["at_threshold"] == {"threshold": 0.62, "coverage": 0.75, "rows": 6, "accuracy": 1.0}
    assert _metrics(threshold=None)["at_threshold"] is None
    seed = [True, False, False, False, False, False, False, True]
    m = _metrics(seed=seed)
    assert m["rows"] == 6 and m["seed_rows_left_out"] == 2 and m["accuracy"] == pytest.approx(4 / 6, abs=1e-4)
    m = _metrics(gold=["a", "a", "b", "b", "a", "b", "a", "c"])  # "c" is not a class of the labeler
    assert m["rows"] == 7 and m["unknown_class_rows"] == 1
    empty = summarize([], 0.5)
    assert empty["rows"] == 0 and empty["accuracy"] is None


def test_noise_rate_is_error_at_threshold_times_model_share():
    refs = {"gold": {"at_threshold": {"accuracy": 0.8, "rows": 50}}, "hidden": {"at_threshold": {"accuracy": 0.9, "rows": 40}}}
    n = noise_estimate(refs, {"gold": 60, "model": 40})
    assert n["reference"] == "hidden" and n["model_share"] == 0.4 and n["expected_noise_rate"] == pytest.approx(0.04)
    assert n["expected_wrong_targets"] == 4.0
    assert noise_estimate({"gold": refs["gold"]}, {"gold": 60, "model": 40})["expected_noise_rate"] == pytest.approx(0.08)
    assert noise_estimate(refs, {"gold": 10})["expected_noise_rate"] == 0.0
    unknown = noise_estimate({}, {"model": 5})
    assert unknown["expected_noise_rate"] is None and "hide_labels" in unknown["why"]


def _records():
    def news(i, **kw):
        return {"id": f"n{i}", "source": "ag", "kind": "news", "text": f"story {i}", **kw}

    rows = [
        news(0, topic="Sports", topic_score=0.9, meta=json.dumps({"line": 1, "hidden_label": "Sports"})),
        news(1, topic="World", topic_score=0.6, meta=json.dumps({"line": 2, "hidden_label": "Business"})),
        news(2, topic="World", topic_score=0.8, label="World"),
        news(3, topic="Sports", topic_score=0.95, meta=json.dumps({"hidden_label": "Sports"}), label_flags="low_x,topic_seed"),
        news(4, topic="Business", topic_score=0.7),  # no reference
        news(5, topic="Business", topic_score=0.4, label=""),  # an empty gold label is none
        news(6, topic="World", topic_score=0.55),  # a human label
        {"id": "w0", "source": "crawl", "kind": "web", "text": "page", "topic": "World", "topic_score": 0.99, "label": "Sports"},  # kind without the task
        news(7, topic=None, topic_score=None, label="World"),  # not labelled
    ]
    return schema.records_from_rows(rows)


def test_eval_batch_scores_each_reference_and_leaves_out_seed_rows_and_other_kinds():
    specs = target_specs(FormatConfig(tasks={"news": ["classification"], "web": ["headline"]}), {"topic": True},
                         {"topic": ["World", "Sports", "Business", "Sci/Tech"]})
    assert specs == {"classification": {"labeler": "topic", "kinds": ["news"], "classes": ["World", "Sports", "Business", "Sci/Tech"],
                                        "threshold": 0.5}}
    table = _records()
    assert hidden_labels(table).to_pylist() == ["Sports", "Business", None, "Sports", None, None, None, None, None]
    parts = eval_batch(table, specs, {"topic": {"n6": "Sci/Tech"}})
    assert sum(parts["n"].to_pylist()) == 5  # hidden n0, n1, n3 (seed); gold n2; human n6
    folded = fold([parts])
    hidden = summarize(folded[("classification", "hidden")], 0.5, specs["classification"]["classes"])
    assert hidden["rows"] == 2 and hidden["seed_rows_left_out"] == 1 and hidden["accuracy"] == 0.5
    gold = summarize(folded[("classification", "gold")], 0.5)
    assert gold["rows"] == 1 and gold["accuracy"] == 1.0  # n2 only: n5's "" is no label, w0's kind has no classification task
    human = summarize(folded[("classification", "human")], 0.5)
    assert human["rows"] == 1 and human["accuracy"] == 0.0 and human["at_threshold"]["coverage"] == 1.0
    assert eval_batch(table, {}, None).num_rows == 0


def test_teacher_validity_counts_invalid_outputs():
    t = pa.table({"task": ["qa", "qa", "qa", "summary", "classification"], schema.LABEL_SOURCE: ["teacher"] * 4 + ["gold"],
                  schema.REJECT_REASON: ["invalid_teacher_output", None, "duplicate_example", None, None]})
    rows = sorted((r["task"], r["valid"], r["n"]) for r in teacher_batch(t).to_pylist())
    assert rows == [("qa", False, 1), ("qa", True, 2), ("summary", True, 1)]


def test_teacher_reference_scores_fold_to_sacrebleu_corpus_chrf_and_mean_rouge_l():
    from sacrebleu.metrics import CHRF

    from sft_ray.train.task_eval import rouge_l_f1

    hyp, ref = ["the cat sat", "a dog", "stocks fall"], ["the cat sat down", "a big dog", "markets fall sharply"]
    blocks = [pa.table({"task": ["summary"] * k, "teacher_output": hyp[i:i + k], "reference": ref[i:i + k]}) for i, k in ((0, 2), (2, 1))]
    got = fold_pair_stats(pair_stats_batch(b) for b in blocks)["summary"]
    assert got["pairs"] == 3 and got["chrf"] == round(CHRF().corpus_score(hyp, [ref]).score, 2)
    assert got["rougeL"] == round(100 * sum(rouge_l_f1(h, r) for h, r in zip(hyp, ref)) / 3, 2)


def test_report_section_shows_sources_numbers_and_plots():
    m = _metrics()
    sft = {"label_sources": {"classification": {"gold": 60, "model": 40}},
           "label_eval": {"classification": {"labeler": "topic", "threshold": 0.7, "kinds": ["news"], "seed_cv_accuracy": 0.88,
                                             "references": {"hidden": m},
                                             "noise": noise_estimate({"hidden": m}, {"gold": 60, "model": 40})}},
           "teacher_eval": {"qa": {"requests": 4, "valid": 3, "validity_rate": 0.75},
                            "summary": {"requests": 2, "valid": 2, "validity_rate": 1.0,
                                        "reference_scores": {"reference": "title", "pairs": 2, "chrf": 54.38, "rougeL": 70.0}}}}
    page = label_targets(sft)
    assert "Expected label noise of the classification examples: 0.00%" in page and "40 of 100 kept examples" in page
    assert page.count("<img ") == 3 and "reliability" in page and "coverage and accuracy" in page
    assert "<td>54.4</td><td>70.0</td>" in page
    assert "<td>model</td>" not in page and "<td>40</td>" in page and "0.750" in page
    assert label_targets({}).startswith("<p>No SFT examples")


def test_margin_is_top_minus_second_probability():
    head = LinearHead(("a", "b", "c"), np.zeros(2), np.ones(2), np.eye(2, 3) * np.log(4), np.zeros(3))
    names, score, margin = head.predict_with_margin(np.array([[1.0, 0.0], [0.0, 0.0]]))
    assert names == ["a", "a"] and score == pytest.approx([4 / 6, 1 / 3]) and margin == pytest.approx([3 / 6, 0.0])
    assert head.predict(np.array([[1.0, 0.0]]))[1] == pytest.approx([4 / 6])


def test_label_export_ranks_by_smallest_margin_and_falls_back_to_the_score(tmp_path):
    import pyarrow.parquet as pq

    from sft_ray.label.studio import export_tasks

    (tmp_path / "curated").mkdir()
    (tmp_path / "manifest.json").write_text(json.dumps({"label": {"topic": {"per_class": {"World": 1, "Sports": 1, "Business": 1}}}}))
    rows = [{"id": f"r{i}", "source": "news", "kind": "news", "text": f"t{i}", "topic": "World", "topic_score": s, "topic_margin": m}
            for i, (s, m) in enumerate([(0.40, 0.30), (0.60, 0.05), (0.45, 0.20), (0.90, 0.85)])]
    pq.write_table(schema.records_from_rows(rows).select(schema.CURATED_COLUMNS), tmp_path / "curated" / "part-0.parquet")
    info = export_tasks(str(tmp_path), n_uncertain=2, n_audit=0)
    tasks = json.loads((tmp_path / "labels" / "studio" / "tasks.json").read_text())
    assert info["ranked_by"] == "topic_margin" and [t["data"]["record_id"] for t in tasks] == ["r1", "r2"]  # not r0, the least confident
    assert tasks[0]["predictions"][0]["score"] == 0.05 and tasks[0]["data"]["model_score"] == 0.6 and tasks[0]["data"]["model_margin"] == 0.05
    # A curated/ from before the margin column: least confidence, said so.
    old = pq.read_table(tmp_path / "curated").drop_columns(["topic_margin", "sentiment_margin", "quality_margin"])
    pq.write_table(old, tmp_path / "curated" / "part-0.parquet")
    info = export_tasks(str(tmp_path), n_uncertain=2, n_audit=0)
    tasks = json.loads((tmp_path / "labels" / "studio" / "tasks.json").read_text())
    assert info["ranked_by"] == "topic_score" and [t["data"]["record_id"] for t in tasks] == ["r0", "r2"]


def test_teacher_eval_joins_outputs_with_titles_in_ray(ray_local):
    from sft_ray.config import TeacherConfig
    from sft_ray.format.teacher_eval import teacher_eval

    def ex(i, task, answer, reason=None, source="teacher"):
        return {"id": f"e{i}", "task": task, "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": answer}],
                "source": "web", "source_id": f"r{i}", "split": "train", "label_source": source, "label_confidence": None,
                "reject_reason": reason, "duplicate_of": None}

    sft = ray_local.data.from_items([ex(0, "summary", "stocks fall"), ex(1, "summary", "a dog", "invalid_teacher_output"),
                                     ex(2, "summary", "rain today"), ex(3, "qa", "Paris"), ex(4, "classification", "World", source="gold")])
    curated = ray_local.data.from_arrow(schema.records_from_rows([
        {"id": "r0", "source": "web", "kind": "web", "text": "x", "title": "markets fall sharply"},
        {"id": "r1", "source": "web", "kind": "web", "text": "x", "title": "a big dog"},
        {"id": "r2", "source": "web", "kind": "web", "text": "x"},  # no title: no reference
        {"id": "r3", "source": "web", "kind": "web", "text": "x", "title": "France"}]))
    got = teacher_eval(sft, curated, TeacherConfig(), 2)
    assert got["qa"] == {"requests": 1, "valid": 1, "validity_rate": 1.0}  # a JSON task: validity only
    assert {k: got["summary"][k] for k in ("requests", "valid", "validity_rate")} == {"requests": 3, "valid": 2, "validity_rate": 0.6667}
    ref = got["summary"]["reference_scores"]
    assert ref["pairs"] == 1 and ref["reference"] == "title" and ref["rougeL"] == 40.0  # "stocks fall" vs "markets fall sharply": P 1/2, R 1/3
