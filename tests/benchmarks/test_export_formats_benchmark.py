"""benchmarks/export_formats.py runs end to end (as a script) on the tiny model and a 6-row validation split."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sft_ray.models import DEFAULT_TINY, tiny_llama_dir

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow  # ~1 min alone (seven exports, each loaded twice); 3 on a busy 2-core machine


def test_table_has_every_format_with_its_drop_from_fp32(tmp_path):
    data = tmp_path / "run"
    (data / "sft" / "validation").mkdir(parents=True)
    (data / "_SUCCESS").touch()
    rows = [{"id": f"{task}-{i}", "task": task, "messages": [{"role": "user", "content": f"{task} question {i}?"},
                                                            {"role": "assistant", "content": ref}]}
            for task, ref in (("classification", "Sports"), ("translation", "Ein Hund.")) for i in range(3)]
    pq.write_table(pa.Table.from_pylist(rows), data / "sft" / "validation" / "part-0.parquet")
    out = tmp_path / "export_formats.md"
    cmd = [sys.executable, "benchmarks/export_formats.py", "--model", str(tiny_llama_dir(DEFAULT_TINY, 0)), "--data", str(data),
           "--examples", "1", "--loss-examples", "2", "--speed-prompts", "1", "--new-tokens", "2", "--out", str(out)]
    subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True)
    table = [line for line in out.read_text().splitlines() if line.startswith("| ") and not line.startswith("| format")]
    assert [line.split(" | ")[0].lstrip("| ") for line in table] == \
        ["fp32", "bf16", "f16", "gguf-f16", "gguf-q8_0", "gguf-q5_0", "gguf-q4_0"]
    res = json.loads(out.with_suffix(".json").read_text())["results"]
    assert res["fp32"]["bytes"] > 1.9 * res["bf16"]["bytes"] and res["gguf-q4_0"]["bytes"] < res["gguf-q8_0"]["bytes"]
    assert all(r["tokens_per_s"] > 0 and r["loss"] > 0 for r in res.values())
    assert set(res["fp32"]["tasks"]) == {"classification", "translation"}
