"""Model labels as targets: gold > human > model, the per-task confidence threshold, and the
`label_source` / `label_confidence` columns on every example (sft_ray/format/labels.py)."""

from __future__ import annotations

import pytest

from sft_ray import schema
from sft_ray.config import FormatConfig
from sft_ray.format import format_batch
from sft_ray.format.split import assign_split

TOPICS = ["World", "Sports", "Business", "Sci/Tech"]
NEWS = {"id": "n-1", "source": "web", "kind": "news", "title": "Cup final", "text": "The home side won 2-1.", "label": None,
        "topic": "Sports", "topic_score": 0.91}
REVIEW = {"id": "r-1", "source": "rev", "kind": "sentiment", "text": "A warm, funny film.", "label": None,
          "sentiment": "positive", "sentiment_score": 0.8}


def _fmt(rows, options=None, human=None, **kw):
    cfg = FormatConfig(**kw)
    records = assign_split(schema.records_from_rows(rows), cfg.validation_fraction, cfg.seed)
    out = format_batch(records, cfg, options or {}, {"topic": TOPICS, "sentiment": ["negative", "positive"]}, human)
    return {(e["source_id"], e["task"]): e for e in out.to_pylist()}


def test_unlabelled_news_gets_classification_from_the_topic_labeler():
    ex = _fmt([NEWS])
    cls = ex[("n-1", "classification")]
    assert cls["messages"][-1]["content"] == "Sports" and "World, Sports, Business, Sci/Tech" in cls["messages"][0]["content"]
    assert cls["label_source"] == "model" and cls["label_confidence"] == pytest.approx(0.91)
    head = ex[("n-1", "headline")]  # targets from the source itself are gold
    assert head["label_source"] == "gold" and head["label_confidence"] is None


def test_below_the_task_threshold_no_example_and_none_disables():
    assert ("n-1", "classification") not in _fmt([{**NEWS, "topic_score": 0.49}])
    assert ("n-1", "classification") in _fmt([{**NEWS, "topic_score": 0.49}], min_label_confidence={"classification": 0.4})
    assert ("n-1", "classification") not in _fmt([NEWS], min_label_confidence={"classification": None})
    assert ("r-1", "sentiment") in _fmt([REVIEW])  # 0.8 >= 0.7 default
    assert ("r-1", "sentiment") not in _fmt([REVIEW], min_label_confidence={"sentiment": 0.9})


def test_precedence_gold_over_human_over_model():
    human = {"topic": {"n-1": "Business", "n-2": "World"}}
    ex = _fmt([{**NEWS, "label": "Sci/Tech"}, {**NEWS, "id": "n-2"}, {**NEWS, "id": "n-3"}], human=human)
    gold, person, model = ex[("n-1", "classification")], ex[("n-2", "classification")], ex[("n-3", "classification")]
    assert (gold["messages"][-1]["content"], gold["label_source"], gold["label_confidence"]) == ("Sci/Tech", "gold", None)
    assert (person["messages"][-1]["content"], person["label_source"], person["label_confidence"]) == ("World", "human", None)
    assert (model["messages"][-1]["content"], model["label_source"]) == ("Sports", "model")
    # A human label is used even where the model is unsure.
    assert _fmt([{**NEWS, "id": "n-2", "topic_score": 0.1}], human=human)[("n-2", "classification")]["label_source"] == "human"


def test_model_label_outside_the_sources_classes_is_not_used():
    ex = _fmt([{**NEWS, "source": "ag"}], options={"ag": ["politics", "sport"]})
    assert ("n-1", "classification") not in ex


def test_sentiment_from_model_labels_with_model_classes():
    s = _fmt([REVIEW])[("r-1", "sentiment")]
    assert s["messages"][-1]["content"] == "positive" and "negative" in s["messages"][0]["content"]
    assert s["label_source"] == "model" and s["label_confidence"] == pytest.approx(0.8)


def test_threshold_bounds_are_checked():
    with pytest.raises(ValueError):
        FormatConfig(min_label_confidence={"classification": 1.5})
    with pytest.raises(ValueError):
        FormatConfig(min_label_confidence={"qa": 0.5})
