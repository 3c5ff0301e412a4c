"""Decontamination: 13-gram overlap with evaluation sets (XQuAD-style, WMT-style) and the own validation split."""

from __future__ import annotations

import json

import ray

from sft_ray import schema
from sft_ray.config import DecontaminateConfig
from sft_ray.dedup.contamination import build_index, decontaminate, decontaminate_batch, token_hashes
from sft_ray.format.split import assign_split, split_of

# XQuAD en, first paragraph (CC BY-SA 4.0, google-deepmind/xquad), and its zh translation's opening.
CONTEXT = (
    "The Panthers defense gave up just 308 points, ranking sixth in the league, while also leading the NFL in "
    "interceptions with 24 and boasting four Pro Bowl selections. Pro Bowl defensive tackle Kawann Short led the team "
    "in sacks with 11, while also forcing three fumbles and recovering two."
)
QUESTION = "How many points did the Panthers defense surrender?"
ZH = "黑豹队的防守只丢了 308分，在联赛中排名第六，同时也以 24 次拦截领先国家橄榄球联盟 (NFL)，并且四次入选职业碗。"
CFG = DecontaminateConfig()


def _rows(texts):
    return schema.records_from_rows([{"id": f"r{i}", "source": "s", "kind": "text", "text": t} for i, t in enumerate(texts)])


def _reasons(table):
    return list(zip(table[schema.REJECT_REASON].to_pylist(), table[schema.DUPLICATE_OF].to_pylist()))


def test_words_are_lowercased_and_cjk_characters_are_words():
    assert len(token_hashes("The NFL, the nfl!", {})) == 4
    assert len(set(token_hashes("The NFL, the nfl!", {}).tolist())) == 2
    assert len(token_hashes("黑豹队的防守", {})) == 6


def test_a_shared_13_gram_contaminates_but_12_words_do_not():
    idx = build_index([CONTEXT, QUESTION], CFG)
    words = CONTEXT.split()
    thirteen = "Blog post: " + " ".join(words[10:23]).upper() + " ... so more of our own words follow here."
    twelve = "Blog post: " + " ".join(words[10:22]) + " so more of our own words follow here."
    out = decontaminate_batch(_rows([thirteen, twelve, "Unrelated text about rivers and lakes and their many fish."]),
                              [("benchmark:xquad", idx, False)])
    assert _reasons(out) == [("contaminated", "benchmark:xquad"), (None, None), (None, None)]


def test_short_items_count_with_their_length_down_to_min_ngram():
    short = "the panthers line also featured veteran defensive end jared allen"  # 10 words
    tiny = "how many points"  # 3 words: ignored
    idx = build_index([short, tiny], CFG)
    assert set(idx) == {10}
    out = decontaminate_batch(_rows([f"Recap: {short}, who retired.", "how many points did they score"]),
                              [("benchmark:b", idx, False)])
    assert _reasons(out) == [("contaminated", "benchmark:b"), (None, None)]


def test_chinese_overlap_is_found_by_characters():
    idx = build_index([ZH], CFG)
    out = decontaminate_batch(_rows(["新闻：黑豹队的防守只丢了308分，在联赛中排名第六。", "今天天气很好，我们去公园散步吧。"]),
                              [("benchmark:xquad-zh", idx, False)])
    assert _reasons(out)[0] == ("contaminated", "benchmark:xquad-zh") and _reasons(out)[1] == (None, None)


def test_validation_index_only_rejects_training_records_and_rejected_rows_stay(ray_local):
    ids = [f"doc{i}" for i in range(200)]
    val = [i for i in ids if split_of(i, 0.2, 0) == "validation"]
    train = [i for i in ids if split_of(i, 0.2, 0) == "train"]
    rows = [{"id": val[0], "source": "s", "kind": "text", "text": CONTEXT},
            {"id": train[0], "source": "s", "kind": "text", "text": "Quoted: " + CONTEXT[:140]},
            {"id": train[1], "source": "s", "kind": "text", "text": "Something else entirely, about weather in the mountains."},
            {"id": train[2], "source": "s", "kind": "text", "text": CONTEXT, "reject_stage": "dedup", "reject_reason": "exact_duplicate"}]
    ds = ray.data.from_arrow(assign_split(schema.records_from_rows(rows), 0.2, 0))  # the build assigns the split before
    out = {r["id"]: (r["reject_reason"], r["duplicate_of"]) for r in decontaminate(ds, CFG).take_all()}
    assert out == {val[0]: (None, None), train[0]: ("contaminated", "split:validation"), train[1]: (None, None),
                   train[2]: ("exact_duplicate", None)}


def test_benchmark_files_in_squad_lines_and_jsonl_formats(ray_local, tmp_path):
    (tmp_path / "xquad.json").write_text(json.dumps({"data": [{"paragraphs": [{"context": CONTEXT, "qas": [
        {"id": "q", "question": QUESTION, "answers": [{"answer_start": 34, "text": "308"}]}]}]}]}))
    (tmp_path / "wmt.src.de").write_text("Die Verbraucherzentrale rät allen Kunden, die Kündigung schriftlich und per Einschreiben zu senden.\n")
    (tmp_path / "eval.jsonl").write_text(json.dumps({"prompt": "Translate to French: the quick brown fox jumps over the lazy dog near the river bank today"}) + "\n")
    cfg = DecontaminateConfig.model_validate({"validation_split": False, "benchmarks": [
        {"name": "xquad", "path": str(tmp_path / "xquad.json"), "format": "squad"},
        {"name": "wmt", "path": str(tmp_path / "wmt.src.de")},
        {"name": "mine", "path": str(tmp_path / "eval.jsonl"), "format": "jsonl", "fields": ["prompt"]}]})
    texts = ["Sports desk: " + CONTEXT, "Die Verbraucherzentrale rät allen Kunden, die Kündigung schriftlich und per Einschreiben zu senden!",
             "the quick brown fox jumps over the lazy dog near the river bank today, said nobody", "Clean record with nothing in common."]
    out = decontaminate(ray.data.from_arrow(_rows(texts)), cfg).take_all()
    assert sorted((r["id"], r["duplicate_of"]) for r in out) == [
        ("r0", "benchmark:xquad"), ("r1", "benchmark:wmt"), ("r2", "benchmark:mine"), ("r3", None)]
