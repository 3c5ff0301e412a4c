"""The LLM teacher inside a build: its examples join the SFT set before SFT dedup; with a random
tiny model every generation is garbage, so every teacher example lands in sft/rejects/ with stage
`teacher` and reason `invalid_teacher_output`, and examples generated = train + validation + removed."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig

PASSAGES = [
    "The Amazon rainforest covers much of the Amazon basin of South America and is home to thousands of tree species.",
    "Marie Curie was the first woman to win a Nobel Prize and the only person to win Nobel Prizes in two sciences.",
    "The Great Wall of China was built over many centuries to protect Chinese states against raids from the north.",
]


@pytest.mark.slow
def test_build_with_teacher_keeps_every_generation_accounted_for(ray_local, tmp_path):
    docs = tmp_path / "docs.jsonl"
    docs.write_text("".join(json.dumps({"id": f"d{i}", "text": t}) + "\n" for i, t in enumerate(PASSAGES)))
    cfg = RunConfig.model_validate({
        "output": str(tmp_path / "out"),
        "sources": [{"name": "docs", "kind": "text", "format": "jsonl", "path": str(docs)}],
        "dedup": {"num_partitions": 2},
        "teacher": {"enabled": True, "model": "tiny-llama", "batch_size": 4, "concurrency": 1},
    })
    m = build_sft_data(cfg).manifest
    rej = pq.read_table(tmp_path / "out" / "sft" / "rejects").to_pylist()
    tasks = cfg.teacher.tasks
    n_requests = sum(len(PASSAGES) for t in tasks.values() if "text" in t.kinds)
    assert n_requests > 0 and len(rej) == n_requests
    assert {(r["stage"], r["reason"]) for r in rej} == {("teacher", "invalid_teacher_output")}
    assert all(json.loads(r["text"])[-1]["role"] == "assistant" for r in rej)  # the raw output is kept
    assert m["sft"]["removed"] == {"invalid_teacher_output": n_requests}
    assert m["sft"]["generated"] == m["sft"]["train"] + m["sft"]["validation"] + n_requests
