"""Label Studio formats (sft_ray/label/studio.py, label/human.py): the labeling config, task
selection, JSON and JSON-MIN exports read as human labels, and the human.jsonl file. With
label-studio-sdk installed, the config and the tasks' predictions are also checked by the SDK's own
LabelInterface."""

from __future__ import annotations

import json

import numpy as np
import pytest

from sft_ray.label.human import HUMAN_LABELS, append_human_labels, extend_seed, read_human_labels
from sft_ray.label.seed import SeedSet
from sft_ray.label.studio import choose_rows, labeling_config, parse_export

CLASSES = ["World", "Sports", "Business", "Sci/Tech"]
DATA = {"text": "Cup final tonight", "record_id": "news-7", "source": "news", "labeler": "topic", "selected_by": "uncertainty",
        "model_label": "World", "model_score": 0.31}


def _ann(choice, when, cancelled=False, control="topic"):
    return {"id": 1, "completed_by": {"id": 3, "email": "a@example.org"}, "was_cancelled": cancelled, "created_at": when, "updated_at": when,
            "result": [{"id": "x", "from_name": control, "to_name": "text", "type": "choices", "value": {"choices": [choice]}}]}


def test_choose_rows_least_confident_then_random_audit():
    scores = np.array([0.9, 0.3, 0.5, 0.31, 0.99, 0.7])
    picked = choose_rows([f"r{i}" for i in range(6)], scores, 2, 2, seed=0)
    assert picked[:2] == [(1, "uncertainty"), (3, "uncertainty")]
    audit = [i for i, why in picked if why == "audit"]
    assert len(audit) == 2 and not set(audit) & {1, 3}
    assert picked == choose_rows([f"r{i}" for i in range(6)], scores, 2, 2, seed=0)  # deterministic


def test_json_export_newest_uncancelled_annotation_wins():
    export = [{"id": 11, "data": DATA, "annotations": [_ann("Business", "2026-12-05T08:00:00Z"), _ann("Sports", "2026-12-05T09:00:00Z"),
                                                       _ann("World", "2026-12-05T10:00:00Z", cancelled=True)]},
              {"id": 12, "data": {**DATA, "record_id": "news-8"}, "annotations": []}]
    rows, unlabelled = parse_export(export, "topic", CLASSES)
    assert unlabelled == 1 and len(rows) == 1
    assert rows[0] | {} == {"id": "news-7", "labeler": "topic", "label": "Sports", "text": "Cup final tonight", "source": "news",
                            "annotator": "a@example.org", "annotated_at": "2026-12-05T09:00:00Z", "studio_task": 11}


def test_json_min_export():
    rows, unlabelled = parse_export([{**DATA, "id": 5, "topic": "Sci/Tech", "annotator": "b@example.org"}], "topic", CLASSES)
    assert unlabelled == 0 and rows[0]["label"] == "Sci/Tech" and rows[0]["annotator"] == "b@example.org"


def test_bad_exports_are_errors_not_drops():
    with pytest.raises(ValueError, match="not one of"):
        parse_export([{"id": 1, "data": DATA, "annotations": [_ann("Politics", "t")]}], "topic", CLASSES)
    with pytest.raises(ValueError, match="record_id"):
        parse_export([{"id": 1, "data": {"text": "x"}, "annotations": []}], "topic", CLASSES)
    with pytest.raises(ValueError, match="JSON list"):
        parse_export({"tasks": []}, "topic", CLASSES)


def test_human_file_latest_wins_and_extends_the_seed(tmp_path):
    row = {"id": "a", "labeler": "topic", "label": "World", "text": "t1"}
    append_human_labels(str(tmp_path), [row, {**row, "id": "b", "text": "t2"}])
    _, held = append_human_labels(str(tmp_path), [{**row, "label": "Sports"}])
    human = read_human_labels(str(tmp_path))
    assert held == 2 and human.by_labeler == {"topic": {"b": "World", "a": "Sports"}}
    seed = SeedSet(texts=["s"], labels=np.array([0]), label_names=CLASSES, positions=["seed.csv:1"])
    grown = extend_seed(seed, human.seed_rows("topic"), "label.topic")
    assert grown.texts == ["s", "t2", "t1"] and grown.labels.tolist() == [0, 0, 1] and grown.positions[1] == f"{HUMAN_LABELS}:1"
    with pytest.raises(ValueError, match="not classes"):
        extend_seed(seed, [("x", "Politics")], "label.topic")
    (tmp_path / HUMAN_LABELS).write_text(json.dumps({"id": "a"}) + "\n")
    with pytest.raises(ValueError, match="human.jsonl:1"):
        read_human_labels(str(tmp_path))


def test_label_studio_sdk_accepts_config_tasks_predictions_and_reads_back_its_annotations():
    sdk = pytest.importorskip("label_studio_sdk.label_interface")
    li = sdk.LabelInterface(labeling_config("topic", CLASSES))
    li.validate()  # the config parses, names are unique, toName points at the Text tag
    assert li.get_control("topic") is not None and set(li.get_control("topic").labels) == set(CLASSES)
    assert li.validate_task({"data": DATA})  # every $variable of the config is in the task data
    prediction = {"model_version": "sft_ray-topic", "score": 0.31, "result": [
        {"from_name": "topic", "to_name": "text", "type": "choices", "value": {"choices": ["World"]}}]}
    assert li.validate_prediction(prediction, return_errors=True) == []
    bad = {**prediction, "result": [{**prediction["result"][0], "value": {"choices": ["Politics"]}}]}
    assert li.validate_prediction(bad, return_errors=True)  # the SDK does check the choice
    # An annotation as the SDK generates it for this config, in a JSON export, reads back as a human label.
    ann = li.generate_sample_annotation()
    assert ann and li.validate_annotation(ann)
    rows, unlabelled = parse_export([{"id": 1, "data": DATA, "annotations": [ann]}], "topic", CLASSES)
    assert unlabelled == 0 and rows[0]["label"] in CLASSES and rows[0]["id"] == DATA["record_id"]


def test_real_label_studio_exports_read_back():
    """Exports written by a Label Studio 1.23.2 server (tests/data/label_studio/README.md)."""
    from tests.conftest import REPO

    gold = {"news-h1075": "World", "news-h1074": "Business", "news-h1219": "Sci/Tech", "news-h1289": "World"}
    for name in ("export_json.json", "export_json_min.json"):
        items = json.loads((REPO / "tests" / "data" / "label_studio" / name).read_text(encoding="utf-8"))
        rows, unlabelled = parse_export(items, "topic", CLASSES, where=name)
        assert unlabelled == 0 and {r["id"]: r["label"] for r in rows} == gold, name
        assert all(r["annotator"] == "1" and r["annotated_at"] for r in rows)
    full = json.loads((REPO / "tests" / "data" / "label_studio" / "export_json.json").read_text(encoding="utf-8"))
    assert full[0]["predictions"] and full[0]["data"]["selected_by"] == "uncertainty"  # the server kept the pre-filled prediction
