"""Labels become data, end to end: an AG News slice with its labels hidden gets classification
examples from the topic labeler (`label_source` model, at or above format.min_label_confidence), the
rows the model is least sure of go to Label Studio (`sft-ray label export`), the gold labels play the
annotator in Label Studio's JSON export, `sft-ray label import` brings them back, and the next build
trains on them (`label_source` human) and fits the topic head on seed + human rows."""

from __future__ import annotations

import csv
import json

import pyarrow.parquet as pq
import pytest

from sft_ray import cli
from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig
from sft_ray.output import OutputError
from tests.conftest import DEMO_DATA

AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


def _sft(out):
    return [r for split in ("train", "validation") for r in pq.read_table(out / "sft" / split).to_pylist()]


def hidden_news_run(tmp_path):
    """30 gold AG News rows and 100 whose labels are hidden (the "unlabelled news source"), the label
    stage on: (run config dict, {record id: the hidden label}, output folder). Shared with
    tests/label/test_label_studio_server.py."""
    rows = list(csv.reader((DEMO_DATA / "ag_news_test_part.csv").open(encoding="utf-8")))
    hidden = rows[3000:3100]  # labels hidden: the "unlabelled news source"
    with (tmp_path / "news.csv").open("w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([[f"h{i}", title, text] for i, (_, title, text) in enumerate(hidden)])
    gold = {f"news-h{i}": AG_LABELS[c] for i, (c, _, _) in enumerate(hidden)}  # record id -> the hidden label
    out = tmp_path / "out"
    cfg = {
        "output": str(out),
        "sources": [
            {"name": "ag", "kind": "news", "format": "csv", "path": str(DEMO_DATA / "ag_news_test_part.csv"),
             "fields": {"label": 0, "title": 1, "text": 2}, "label_names": AG_LABELS, "limit": 30},
            {"name": "news", "kind": "news", "format": "csv", "path": str(tmp_path / "news.csv"), "fields": {"id": 0, "title": 1, "text": 2}},
        ],
        "dedup": {"num_partitions": 2},
        "format": {"count_tokens": False, "validation_fraction": 0.1},
        "label": {"enabled": True, "concurrency": 1, "topic": {"seed": {"max_rows": 200}}},
    }
    return cfg, gold, out


@pytest.mark.slow
def test_model_labels_become_targets_and_human_labels_come_back(ray_local, tmp_path):
    cfg, gold, out = hidden_news_run(tmp_path)
    m = build_sft_data(RunConfig.model_validate(cfg)).manifest
    cls = [r for r in _sft(out) if r["task"] == "classification"]
    by_source = {s: [r for r in cls if r["source"] == s] for s in ("ag", "news")}
    assert by_source["ag"] and all(r["label_source"] == "gold" and r["label_confidence"] is None for r in by_source["ag"])
    model = by_source["news"]
    assert model and all(r["label_source"] == "model" and r["label_confidence"] >= 0.5 for r in model)
    assert all(r["messages"][-1]["content"] in AG_LABELS.values() for r in model)
    curated = {r["id"]: r for r in pq.read_table(out / "curated").to_pylist()}
    sure = [r for r in curated.values() if r["source"] == "news" and r["topic_score"] >= 0.5]
    assert len(model) == len(sure)  # every confident unlabelled row, and only those, became an example
    assert all(r["label_source"] == "gold" for r in _sft(out) if r["task"] == "headline")

    # Label Studio round trip: 10 least confident + 5 audit rows, answered with the hidden gold labels.
    assert cli.main(["label", "export", str(out), "--uncertain", "10", "--audit", "5"]) == 0
    tasks = json.loads((out / "labels" / "studio" / "tasks.json").read_text())
    assert [t["data"]["selected_by"] for t in tasks] == ["uncertainty"] * 10 + ["audit"] * 5
    scores = [t["predictions"][0]["score"] for t in tasks]
    rest = [r["topic_score"] for r in curated.values() if r["source"] == "news" and r["id"] not in {t["data"]["record_id"] for t in tasks[:10]}]
    assert max(scores[:10]) <= min(rest)
    assert '<Choices name="topic" toName="text"' in (out / "labels" / "studio" / "config.xml").read_text()
    export = [{"id": i + 1, "data": t["data"], "predictions": t["predictions"], "annotations": [
        {"id": 100 + i, "completed_by": 1, "was_cancelled": False, "created_at": "2026-12-05T08:00:00Z", "result": [
            {"id": "r1", "from_name": "topic", "to_name": "text", "type": "choices", "origin": "manual",
             "value": {"choices": [gold[t["data"]["record_id"]]]}}]}]} for i, t in enumerate(tasks)]
    (tmp_path / "export.json").write_text(json.dumps(export))
    assert cli.main(["label", "import", str(out), str(tmp_path / "export.json")]) == 0
    human = [json.loads(line) for line in (out / "labels" / "human.jsonl").read_text().splitlines()]
    assert len(human) == 15 and {h["id"] for h in human} == {t["data"]["record_id"] for t in tasks}

    with pytest.raises(OutputError, match="human.jsonl"):  # new human labels: the finished build is out of date, not skipped
        build_sft_data(RunConfig.model_validate(cfg))
    m2 = build_sft_data(RunConfig.model_validate({**cfg, "overwrite": True})).manifest
    assert m2["label"]["topic"]["human_rows"] == 15 and m2["label"]["topic"]["rows"] == m["label"]["topic"]["rows"] + 15
    after = {r["source_id"]: r for r in _sft(out) if r["task"] == "classification"}
    for h in human:  # every human label is a target now, even where the model was unsure
        ex = after[h["id"]]
        assert ex["label_source"] == "human" and ex["label_confidence"] is None and ex["messages"][-1]["content"] == h["label"]
