"""SFT-example dedup: the same conversation, or the same prompt with another answer, is removed
globally (smallest example id survives) whatever the partitioning; the build writes what it
removed to sft/rejects/ and counts it, so examples generated = train + validation + removed."""

from __future__ import annotations

import json
import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import ray

from sft_ray import schema
from sft_ray.config import DedupConfig, SftDedupConfig
from sft_ray.dedup.removals import ROW
from sft_ray.dedup.sft import example_key, key_rows, removed, sft_dedup, survivors


def _ex(i: str, user: str, answer: str, split: str = "train", system: str | None = None) -> dict:
    msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}, {"role": "assistant", "content": answer}]
    return {"id": i, "task": "qa", "messages": msgs, "source": "s", "source_id": i.split(":")[0], "split": split}


def _examples() -> list[dict]:
    rows = [_ex(f"r{i:03d}:qa", f"Question {i}: what is {i} squared?", str(i * i)) for i in range(200)]
    rows += [_ex(f"r{500 + i:03d}:qa", f"Question {i}:  what is {i} SQUARED?", str(i * i), split="validation") for i in range(0, 40, 4)]  # same
    rows += [_ex(f"r{700 + i:03d}:qa", f"Question {i}: what is {i} squared?", f"It is {i * i}.") for i in range(0, 60, 6)]  # paraphrased answer
    rows += [_ex("r900:qa", "Question 1: what is 1 squared?", "1", system="Be brief.")]  # another system prompt: another prompt
    return rows


def _run(rows: list[dict], blocks: int, on: str, partitions: int | DedupConfig = 3) -> dict[str, tuple]:
    k = -(-len(rows) // blocks)
    ds = ray.data.from_arrow([pa.Table.from_pylist(rows[i : i + k], schema=schema.SFT_SCHEMA) for i in range(0, len(rows), k)])
    out = sft_dedup(ds, SftDedupConfig(on=on), partitions).take_all()
    assert len(out) == len(rows)  # tag, never drop
    return {r["id"]: (r["reject_reason"], r["duplicate_of"]) for r in out}


def test_keys_collapse_whitespace_and_case_and_prompt_ignores_the_answer():
    a = _ex("a", "Hello  world", "x")["messages"]
    b = _ex("b", "hello world", "y")["messages"]
    assert example_key(a, "prompt", True) == example_key(b, "prompt", True)
    assert example_key(a, "example", True) != example_key(b, "example", True)
    assert example_key(a, "prompt", False) != example_key(b, "prompt", False)


@pytest.mark.parametrize("blocks", [1, 4, 16])
def test_same_survivors_whatever_the_partitioning(ray_local, blocks):
    rows = _examples()
    ref = _run(rows, 1, "prompt")
    shuffled = rows[:]
    random.Random(blocks).shuffle(shuffled)
    assert _run(shuffled, blocks, "prompt") == ref


def test_example_mode_removes_copies_prompt_mode_also_other_answers(ray_local):
    by_example = _run(_examples(), 4, "example")
    assert by_example["r500:qa"] == ("duplicate_example", "r000:qa")  # across splits, case and spaces differ
    assert by_example["r700:qa"] == (None, None)  # another answer is another example
    assert sum(1 for v in by_example.values() if v[0]) == 10
    by_prompt = _run(_examples(), 4, "prompt")
    assert by_prompt["r706:qa"] == ("duplicate_prompt", "r006:qa")
    assert by_prompt["r900:qa"] == (None, None)  # the system prompt is part of the prompt
    assert sum(1 for v in by_prompt.values() if v[0]) == 20


def test_the_shuffle_moves_keys_not_conversations_and_sizes_partitions_from_their_bytes(ray_local):
    """What is shuffled is (16-byte key, id, row id) per live example; partitions sized from those
    bytes (1 KiB each here: several partitions) give the same survivors as a fixed count."""
    rows = _examples()
    t = pa.Table.from_pylist(rows, schema=schema.SFT_SCHEMA)
    t = t.append_column(schema.REJECT_REASON, pa.nulls(len(rows), pa.string())).append_column(ROW, pa.array(range(len(rows)), pa.int64()))
    keys = key_rows(t, SftDedupConfig())
    assert keys.column_names == ["sft_dedup_key", schema.ID, ROW] and keys.schema.field(0).type == pa.binary(16)
    assert keys.nbytes < t.nbytes / 3  # one-line examples here; a news or web example is ~30x its key row
    sized = DedupConfig(partition_bytes=1024, max_partitions=64)
    assert _run(rows, 4, "prompt", sized) == _run(rows, 4, "prompt", 1)


def test_examples_rejected_before_dedup_keep_their_reason(ray_local):
    rows = _examples()[:3] + [_ex("r999:teacher_qa", "Question 0: what is 0 squared?", "0")]
    t = pa.Table.from_pylist(rows, schema=schema.SFT_SCHEMA)
    t = t.append_column(schema.REJECT_REASON, pa.array([None, None, None, "invalid_teacher_output"])).append_column(schema.DUPLICATE_OF, pa.nulls(4, pa.string()))
    out = {r["id"]: (r["reject_reason"], r["duplicate_of"]) for r in sft_dedup(ray.data.from_arrow(t), SftDedupConfig(), 2).take_all()}
    assert out["r999:teacher_qa"] == ("invalid_teacher_output", None)  # not a duplicate of r000: it was never live
    assert out["r000:qa"] == (None, None)


def test_survivors_and_removed_tables():
    t = pa.Table.from_pylist([_ex("a:qa", "q", "1"), _ex("b:qa", "q", "1", split="validation")], schema=schema.SFT_SCHEMA)
    t = t.append_column(schema.REJECT_REASON, pa.array([None, "duplicate_example"])).append_column(schema.DUPLICATE_OF, pa.array([None, "a:qa"]))
    assert survivors(t, "train").schema == schema.SFT_OUTPUT_SCHEMA and survivors(t, "train")[schema.ID].to_pylist() == ["a:qa"]
    assert survivors(t, "validation").num_rows == 0
    rej = removed(t).to_pylist()
    assert rej[0]["stage"] == "sft_dedup" and rej[0]["duplicate_of"] == "a:qa" and json.loads(rej[0]["meta"])["split"] == "validation"
    assert json.loads(rej[0]["text"])[1] == {"role": "assistant", "content": "1"}


@pytest.mark.slow
def test_build_writes_sft_rejects_and_counts_them(ray_local, tmp_path):
    """One English caption with two German translations: prompt dedup keeps one en->de example and
    both de->en examples (different prompts); nothing is lost from the count."""
    from sft_ray.build import build_sft_data
    from sft_ray.config import RunConfig

    (tmp_path / "en.txt").write_text("A dog runs on the beach.\nA dog runs on the beach.\nTwo girls read a book.\n")
    (tmp_path / "de.txt").write_text("Ein Hund rennt am Strand.\nEin Hund läuft am Strand.\nZwei Mädchen lesen ein Buch.\n")
    cfg = RunConfig.model_validate({
        "output": str(tmp_path / "out"),
        "sources": [{"name": "m", "kind": "translation", "format": "bitext", "langs": {"src": "en", "tgt": "de"},
                     "path": {"src": str(tmp_path / "en.txt"), "tgt": str(tmp_path / "de.txt")}}],
        "clean": {"enabled": False},
        "dedup": {"num_partitions": 2, "sft": {"on": "prompt"}},
        "format": {"validation_fraction": 0.0},
    })
    m = build_sft_data(cfg).manifest
    rej = pq.read_table(tmp_path / "out" / "sft" / "rejects").to_pylist()
    assert [(r["reason"], json.loads(r["text"])[-1]["content"]) for r in rej] in (
        [("duplicate_prompt", "Ein Hund läuft am Strand.")], [("duplicate_prompt", "Ein Hund rennt am Strand.")])
    train = pq.read_table(tmp_path / "out" / "sft" / "train").to_pylist()
    assert len(train) == 5 and rej[0]["duplicate_of"] in {r["id"] for r in train}
    assert m["sft"]["generated"] == 6 and m["sft"]["removed"] == {"duplicate_prompt": 1}
    assert m["sft"]["generated"] == m["sft"]["train"] + m["sft"]["validation"] + sum(m["sft"]["removed"].values())
