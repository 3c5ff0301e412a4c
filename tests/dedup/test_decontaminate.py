"""Decontamination: 13-gram overlap with evaluation sets (XQuAD-style, WMT-style) and the own validation split."""

from __future__ import annotations

import json
import random

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


# ------------------------------------------------------------------ the validation split as a join
def _join_rows(seed: int = 7) -> list[dict]:
    """Validation items of 5-40 words (some titled news), training records quoting 6-14-word windows
    of them (a hit from 8 words when the item is that short, from 13 otherwise), unrelated records,
    and rejected rows that quote too (they stay as they are)."""
    rng = random.Random(seed)
    vocab = [f"{w}{i}" for i in range(60) for w in ("river", "stone")]
    words = lambda n: [rng.choice(vocab) for _ in range(n)]  # noqa: E731
    val = [words(rng.choice([5, 8, 10, 12, 20, 40])) for _ in range(40)]
    rows = [{"id": f"v{i:03d}", "source": "s", "kind": "news" if i % 3 else "text", "split": "validation", "text": " ".join(w),
             "title": " ".join(words(9)) if i % 3 == 1 else None} for i, w in enumerate(val)]
    for i in range(120):
        src = rng.choice(val)
        k = min(len(src), rng.randint(6, 14))
        at = rng.randint(0, len(src) - k)
        quote = src[at : at + k] if i % 2 else words(k)
        row = {"id": f"t{i:03d}", "source": "s", "kind": "news", "split": "train", "text": " ".join(words(5) + quote + words(7))}
        if i % 17 == 0:
            row.update(reject_stage="dedup", reject_reason="exact_duplicate", split=None)
        rows.append(row)
    # The whole of a 10-word item, by the shorter-item rule; and a title quoted.
    rows.append({"id": "t900", "source": "s", "kind": "news", "split": "train", "text": "Intro: " + " ".join(next(w for w in val if len(w) == 10))})
    rows.append({"id": "t901", "source": "s", "kind": "news", "split": "train", "text": "Title: " + rows[1]["title"] + " and more"})
    return rows


def _old_index_path(rows: list[dict]) -> dict:
    """What the driver-side validation index gave: every live validation item indexed, training records checked."""
    items = [r.get(c) for r in rows if r.get("split") == "validation" and not r.get("reject_reason") for c in ("text", "title")]
    out = decontaminate_batch(schema.records_from_rows(rows), [("split:validation", build_index([t for t in items if t], CFG), True)])
    return dict(zip(out[schema.ID].to_pylist(), _reasons(out)))


def _blocks(rows: list[dict], size: int = 23) -> ray.data.Dataset:
    table = schema.records_from_rows(rows)
    return ray.data.from_arrow([table.slice(i, size) for i in range(0, table.num_rows, size)])


def _tags(ds: ray.data.Dataset) -> dict:
    return {r["id"]: (r["reject_reason"], r["duplicate_of"]) for r in ds.take_all()}


def test_validation_join_over_blocks_and_partitions_matches_the_old_index(ray_local):
    rows = _join_rows()
    expected = _old_index_path(rows)
    hits = {i for i, (reason, dup) in expected.items() if dup == "split:validation"}
    assert {"t900", "t901"} <= hits and len(hits) >= 10 and len(expected) - len(hits) > 100  # both outcomes, plenty of each
    assert all(expected[r["id"]] == ("exact_duplicate", None) for r in rows if r.get("reject_reason"))
    for parts in (1, 4):
        assert _tags(decontaminate(_blocks(rows), CFG, parts)) == expected, parts


def test_validation_join_by_id_shuffle_equals_the_broadcast_hit_list(ray_local):
    rows = _join_rows(seed=11)
    shuffled = CFG.model_copy(update={"broadcast_max_hits": 0})
    broadcast = _tags(decontaminate(_blocks(rows, 31), CFG, 3))
    assert sum(dup == "split:validation" for _, dup in broadcast.values()) >= 10
    assert _tags(decontaminate(_blocks(rows, 31), shuffled, 3)) == broadcast == _old_index_path(rows)


def test_kinds_without_examples_are_neither_indexed_nor_checked(ray_local, tmp_path):
    ids = {s: [i for i in (f"doc{n}" for n in range(400)) if split_of(i, 0.2, 0) == s] for s in ("validation", "train")}
    bench = "Die Verbraucherzentrale rät allen Kunden, die Kündigung schriftlich und per Einschreiben zu senden."
    (tmp_path / "bench.txt").write_text(bench + "\n")
    cfg = DecontaminateConfig.model_validate({"benchmarks": [{"name": "xquad", "path": str(tmp_path / "bench.txt")}]})
    web_passage = "Web page: the river stone bridge was rebuilt in the spring after the flood took the old one away entirely."
    val, train = ids["validation"], ids["train"]
    rows = [
        {"id": val[0], "kind": "web", "text": web_passage},  # a validation record no example comes from: not indexed
        {"id": val[1], "kind": "news", "text": CONTEXT},
        {"id": train[0], "kind": "news", "text": "Quoted: " + web_passage},  # would match the web record
        {"id": train[1], "kind": "web", "text": "Quoted: " + CONTEXT},  # matches, but a web record is not checked
        {"id": train[2], "kind": "news", "text": "Quoted: " + CONTEXT[:140]},
        {"id": train[3], "kind": "web", "text": "Zitat: " + bench},  # the benchmark, but web
        {"id": train[4], "kind": "news", "text": "Zitat: " + bench},
    ]
    table = assign_split(schema.records_from_rows([{"source": "s", **r} for r in rows]), 0.2, 0)
    out = _tags(decontaminate(ray.data.from_arrow(table), cfg, 2, frozenset({"news"})))
    assert out == {val[0]: (None, None), val[1]: (None, None), train[0]: (None, None), train[1]: (None, None),
                   train[2]: ("contaminated", "split:validation"), train[3]: (None, None), train[4]: ("contaminated", "benchmark:xquad")}
    everyone = _tags(decontaminate(ray.data.from_arrow(table), cfg, 2))  # every kind takes part
    assert everyone[train[0]] == everyone[train[1]] == ("contaminated", "split:validation")
    assert everyone[train[3]] == ("contaminated", "benchmark:xquad")


def test_example_kinds_are_format_tasks_and_teacher_tasks():
    from sft_ray.build import example_kinds
    from sft_ray.config import RunConfig

    base = {"output": "/tmp/x", "sources": [{"name": "a", "kind": "text", "format": "jsonl", "path": "/tmp/a.jsonl"}]}
    assert example_kinds(RunConfig.model_validate(base)) == {"news", "translation", "qa", "sentiment", "sft"}
    cfg = RunConfig.model_validate({**base, "format": {"tasks": {"news": ["headline"], "text": []}}, "teacher": {"enabled": True}})
    assert example_kinds(cfg) == {"news", "web", "text"}  # the default teacher tasks: qa (web, text), summary (web)


def test_thai_characters_are_words():
    from sft_ray.dedup.ngrams import word_count

    assert word_count("สวัสดีครับ วันนี้") == 16 and word_count("北京 hello") == 3
