"""The label stage inside a build: curated/ carries topic columns for news rows (null for pairs) and
quality columns for text rows, low-confidence and low-quality rows go to rejects/ with stage
`label`, the heads' fits are in the manifest, and input = kept + rejected still holds."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig
from tests.conftest import DEMO_DATA

AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


@pytest.mark.slow
def test_build_with_topic_and_quality_labels(ray_local, tmp_path):
    # Main-content and boilerplate blocks of three held-out web pages, as a plain-text source.
    held = [json.loads(line) for line in (DEMO_DATA / "web_quality_heldout.jsonl").read_text("utf-8").splitlines()]
    blocks = [r for r in held if r["page"] in ("wapo-1", "theverge", "lwn-1") and len(r["text"]) >= 40][::3]
    (tmp_path / "blocks.jsonl").write_text("".join(json.dumps({"text": r["text"], "gold": r["label"]}) + "\n" for r in blocks))
    cfg = RunConfig.model_validate({
        "output": str(tmp_path / "out"),
        "sources": [
            {"name": "ag", "kind": "news", "format": "csv", "path": str(DEMO_DATA / "ag_news_test_part.csv"),
             "fields": {"label": 0, "title": 1, "text": 2}, "label_names": AG_LABELS, "limit": 120},
            {"name": "m30k", "kind": "translation", "format": "bitext", "langs": {"src": "en", "tgt": "de"}, "limit": 30,
             "path": {"src": str(DEMO_DATA / "multi30k_train_3k.en.gz"), "tgt": str(DEMO_DATA / "multi30k_train_3k.de.gz")}},
            {"name": "blocks", "kind": "text", "format": "jsonl", "path": str(tmp_path / "blocks.jsonl"), "fields": {"text": "text"}},
        ],
        "dedup": {"num_partitions": 2},
        "label": {"enabled": True, "concurrency": 1, "topic": {"min_confidence": 0.6, "action": "reject", "seed": {
            "path": str(DEMO_DATA / "ag_news_test_part.csv"), "format": "csv", "text_fields": [1, 2], "label_field": 0,
            "label_names": AG_LABELS, "max_rows": 200}},
                  "quality": {"action": "reject", "seed": {"max_rows": 120}}},
    })
    m = build_sft_data(cfg).manifest
    curated = pq.read_table(tmp_path / "out" / "curated").to_pylist()
    rejects = pq.read_table(tmp_path / "out" / "rejects").to_pylist()
    c = m["counts"]
    assert c["input"] == 150 + len(blocks) and c["input"] == len(curated) + len(rejects) == c["kept"] + c["rejected"]
    news = [r for r in curated if r["kind"] == "news"]
    assert news and all(r["topic"] in AG_LABELS.values() and r["topic_score"] >= 0.6 for r in news)
    assert all(r["topic"] is None and r["topic_score"] is None for r in curated if r["kind"] == "translation")
    low = [r for r in rejects if r["reason"] == "low_label_confidence"]
    assert all(r["stage"] == "label" for r in low) and c["by_stage"].get("label", {}).get("low_label_confidence", 0) == len(low)
    # Most confident topics agree with the gold AG News class (the seed shares this file: a wiring check, not a score).
    assert sum(r["topic"] == r["label"] for r in news) / len(news) > 0.7
    assert m["label"]["topic"]["rows"] == 200 and "cv_accuracy" in m["label"]["topic"]
    # Quality: text rows only (news is not a default quality kind); below 0.5 rejected `low_quality`.
    text = [r for r in curated if r["kind"] == "text"]
    assert text and all(r["quality"] == "good" and r["quality_score"] >= 0.5 for r in text)
    assert all(r["quality"] is None and r["quality_score"] is None for r in news)
    low_q = [r for r in rejects if r["reason"] == "low_quality"]
    assert low_q and all(r["stage"] == "label" and r["source"] == "blocks" for r in low_q)
    assert c["by_stage"]["label"]["low_quality"] == len(low_q)
    gold = {r["text"]: r["label"] for r in blocks}
    assert sum(gold.get(r["text"]) == "good" for r in text) >= 0.8 * len(text)  # kept blocks are mostly main content
    assert m["label"]["quality"]["rows"] == 120 and "cv_accuracy" in m["label"]["quality"]
