"""Format: task messages, template rotation, language names, deterministic split."""

from __future__ import annotations

from sft_ray import schema
from sft_ray.config import FormatConfig
from sft_ray.format import format_batch
from sft_ray.format.split import assign_split, split_of

NEWS = {"id": "ag-1", "source": "ag", "kind": "news", "title": "Stocks rise", "text": "Markets rallied on Monday.", "label": "Business"}
PAIR = {"id": "m-1", "source": "m", "kind": "translation", "src_text": "A dog.", "tgt_text": "Ein Hund.", "src_lang": "en", "tgt_lang": "de"}


def _fmt(rows, **kw):
    cfg = FormatConfig(**kw)
    records = assign_split(schema.records_from_rows(rows), cfg.validation_fraction, cfg.seed)  # as the build does, before format
    return format_batch(records, cfg, {"ag": ["World", "Sports", "Business", "Sci/Tech"]}).to_pylist()


def test_news_gives_classification_and_headline():
    ex = {e["task"]: e for e in _fmt([NEWS])}
    cls = ex["classification"]["messages"]
    assert [m["role"] for m in cls] == ["user", "assistant"] and cls[1]["content"] == "Business"
    assert "World, Sports, Business, Sci/Tech" in cls[0]["content"] and "Markets rallied" in cls[0]["content"]
    assert ex["headline"]["messages"][1]["content"] == "Stocks rise"
    assert ex["headline"]["source_id"] == "ag-1" and ex["headline"]["id"] == "ag-1:headline"


def test_no_label_no_classification_example():
    assert [e["task"] for e in _fmt([{**NEWS, "label": None}])] == ["headline"]


def test_translation_both_directions_with_language_names_and_system_prompt():
    ex = _fmt([PAIR], system_prompt="You translate.")
    assert [e["id"] for e in ex] == ["m-1:translation:en-de", "m-1:translation:de-en"]
    fwd, back = ex[0]["messages"], ex[1]["messages"]
    assert fwd[0] == {"role": "system", "content": "You translate."}
    assert "German" in fwd[1]["content"] and fwd[2]["content"] == "Ein Hund."
    assert "English" in back[1]["content"] and back[2]["content"] == "A dog."
    assert len({e["split"] for e in ex}) == 1  # both directions on the same side of the split
    assert [e["id"] for e in _fmt([PAIR], translation_directions="forward")] == ["m-1:translation:en-de"]


def test_templates_rotate_but_are_deterministic():
    rows = [{**NEWS, "id": f"ag-{i}", "text": f"{NEWS['text']} ({i})"} for i in range(30)]
    prompts = [e["messages"][0]["content"] for e in _fmt(rows) if e["task"] == "headline"]
    assert len({p.split("(")[0] for p in prompts}) > 1  # phrasings rotate over inputs
    assert prompts == [e["messages"][0]["content"] for e in _fmt(rows) if e["task"] == "headline"]
    same_text = [e["messages"][0]["content"] for e in _fmt([{**NEWS, "id": f"ag-{i}"} for i in range(5)]) if e["task"] == "headline"]
    assert len(set(same_text)) == 1  # equal inputs render equal prompts (SFT prompt dedup relies on it)


def test_split_fraction_and_determinism():
    ids = [f"r{i}" for i in range(4000)]
    val = [i for i in ids if split_of(i, 0.1, 0) == "validation"]
    assert 300 < len(val) < 500
    assert val == [i for i in ids if split_of(i, 0.1, 0) == "validation"]
    assert all(split_of(i, 0.0, 0) == "train" for i in ids[:100])


def test_task_weights_keep_a_deterministic_share_and_tag_the_rest():
    rows = [{**NEWS, "id": f"ag-{i}", "text": f"{NEWS['text']} ({i})"} for i in range(400)]
    out = _fmt(rows, task_weights={"headline": 0.25})
    head = [e for e in out if e["task"] == "headline"]
    kept = [e for e in head if e["reject_reason"] is None]
    assert len(head) == 400 and 70 < len(kept) < 130  # ~25% kept; the rest are tagged, not dropped
    assert {e["reject_reason"] for e in head if e not in kept} == {"task_mix"}
    assert all(e["reject_reason"] is None for e in out if e["task"] == "classification")
    assert [e["id"] for e in kept] == [e["id"] for e in _fmt(rows, task_weights={"headline": 0.25}) if e["task"] == "headline" and e["reject_reason"] is None]
