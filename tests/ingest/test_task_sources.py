"""Sources for the QA, sentiment and dialogue tasks: SQuAD/XQuAD JSON, labelled line files
(rt-polarity) and chat JSONL (OpenAI `messages` / ShareGPT), read from the real corpora; invalid
conversations are named rejects; a small build turns them into qa / sentiment / dialogue examples,
with every question about one passage on the same side of the split."""

from __future__ import annotations

import json
from collections import defaultdict

import pyarrow.parquet as pq
import pytest

from sft_ray.config import RunConfig
from sft_ray.ingest.dialogue import conversation_of, render
from sft_ray.ingest.formats import read_lines, read_squad
from tests.conftest import TEST_DATA

XQUAD = TEST_DATA / "qa" / "xquad" / "xquad.en.json"  # in the repository: tests/data/NOTICE.md
RT = TEST_DATA / "sentiment" / "rt-polarity"

CHATS = [
    {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is the capital of France?"},
                  {"role": "assistant", "content": " Paris. "}]},
    {"conversations": [{"from": "human", "value": "Name a prime number."}, {"from": "gpt", "value": "Seven."},
                       {"from": "human", "value": "Another one?"}, {"from": "gpt", "value": "Eleven."}]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "user", "content": "Hello?"}, {"role": "assistant", "content": "Hey."}]},
    {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "  "}]},
    {"messages": [{"role": "user", "content": "Is this the end?"}]},
    {"conversations": [{"from": "narrator", "value": "Once"}, {"from": "gpt", "value": "upon"}]},
    {"text": "no conversation at all"},
]


def test_squad_rows_are_questions_with_their_passage():
    rows = [r.fields for r in read_squad(str(XQUAD), {})]
    assert len(rows) == 1190  # XQuAD: 240 paragraphs, 1,190 questions
    first = rows[0]
    assert first["answer"] in first["text"] and first["question"].endswith("?") and first["id"]
    assert len({r["text"] for r in rows}) == 240


def test_squad_that_is_not_squad_is_a_named_reject(tmp_path):
    (tmp_path / "x.json").write_text('{"version": 1}')
    (raw,) = list(read_squad(str(tmp_path / "x.json"), {}))
    assert raw.fields is None and raw.reason == "malformed_json" and "KeyError" in raw.raw


def test_lines_take_the_label_from_the_file(tmp_path):
    rows = list(read_lines(str(RT / "rt-polarity.pos"), {}, "utf-8", "positive"))
    assert len(rows) == 5331 and all(r.fields["label"] == "positive" for r in rows[:10])
    (tmp_path / "l1.txt").write_bytes("caf\xe9 au lait\n\n".encode("latin-1"))
    assert [r.fields for r in read_lines(str(tmp_path / "l1.txt"), {}, "latin-1")] == [{"text": "café au lait"}]
    (bad,) = list(read_lines(str(tmp_path / "l1.txt"), {}, "utf-8"))
    assert bad.reason == "invalid_utf8"


def test_conversations_are_validated_and_normalised():
    ok, err = conversation_of(CHATS[0])
    assert err is None and json.loads(ok)[-1] == {"role": "assistant", "content": "Paris."}
    ok, err = conversation_of(CHATS[1])
    assert err is None and [m["role"] for m in json.loads(ok)] == ["user", "assistant", "user", "assistant"]
    assert render(ok).startswith("user: Name a prime number.\nassistant: Seven.")
    problems = [conversation_of(c) for c in CHATS[2:]]
    assert all(e == "invalid_dialogue" for _, e in problems)
    assert [p for p, _ in problems] == [
        "turn 1: user where assistant was expected (roles must alternate, user first)",
        "turn 1: empty or non-text content", "the last turn is not the assistant's",
        "turn 0: unknown role None", "no `messages` or `conversations` list"]


@pytest.mark.slow
def test_build_makes_qa_sentiment_and_dialogue_examples(ray_local, tmp_path):
    from sft_ray.build import build_sft_data

    chats = tmp_path / "chats.jsonl"
    chats.write_text("".join(json.dumps(c) + "\n" for c in CHATS))
    cfg = RunConfig.model_validate({
        "output": str(tmp_path / "out"),
        "sources": [
            {"name": "xquad", "kind": "qa", "format": "squad", "path": str(XQUAD), "langs": {"text": "en"}, "limit": 300},
            {"name": "rt", "kind": "sentiment", "format": "lines", "langs": {"text": "en"}, "limit": 80,
             "path": {"positive": str(RT / "rt-polarity.pos"), "negative": str(RT / "rt-polarity.neg")}},
            {"name": "chat", "kind": "sft", "format": "jsonl", "path": str(chats)},
        ],
        "dedup": {"num_partitions": 2},
        "format": {"validation_fraction": 0.3},
    })
    m = build_sft_data(cfg).manifest
    c = m["counts"]
    assert c["input"] == 300 + 80 + 7 and c["input"] == c["kept"] + c["rejected"]
    assert c["by_stage"]["ingest"]["invalid_dialogue"] == 5
    out = tmp_path / "out"
    # Questions sharing a passage are neither near duplicates nor contamination (only true copies go).
    assert {r["reason"] for r in pq.read_table(out / "rejects").to_pylist() if r["source"] == "xquad"} <= {"exact_duplicate"}
    train = pq.read_table(out / "sft" / "train").to_pylist()
    val = pq.read_table(out / "sft" / "validation").to_pylist()
    by_task = defaultdict(int)
    for r in train + val:
        by_task[r["task"]] += 1
    qa = m["sft"]["by_task"]["qa"]  # train, validation and any removed by SFT dedup (case-only repeats)
    assert sum(qa.values()) == 300 - c["by_source"]["xquad"]["rejected"] and by_task["qa"] == qa["train"] + qa["validation"]
    assert by_task["dialogue"] == 2 and by_task["sentiment"] == 80 - c["by_source"]["rt"]["rejected"]
    sent = next(r for r in train + val if r["task"] == "sentiment")
    assert sent["messages"][-1]["content"] in ("positive", "negative") and "negative" in sent["messages"][0]["content"]
    passage_split = defaultdict(set)
    for split, rows in (("train", train), ("validation", val)):
        for r in rows:
            if r["task"] == "qa":
                passage_split[r["messages"][0]["content"].split("Passage: ")[-1][:80]].add(split)
    assert len(passage_split) > 10 and all(len(s) == 1 for s in passage_split.values())
