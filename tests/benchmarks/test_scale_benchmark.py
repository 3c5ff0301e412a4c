"""Smoke test of benchmarks/scale.py: --quick builds ~2,000 generated documents with this tree and
prints the table, with the identity check of curated/ ids (a tree against itself: "yes"). The build
runs as its own process, whose sft_ray/runtime.py starts (and stops) a local Ray of its own
(address="local", under its own RAY_TMPDIR): no Ray of the test process is involved. ~60 s on 2
cores, nearly all of it Ray's start and the build's fixed costs. No timing assertions."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks.scale import build_corpus, same_ids  # noqa: E402


def test_same_ids_says_how_two_builds_differ():
    a = np.array(["s-1", "s-2", "s-3"])
    assert same_ids(a, a.copy()) == "yes"
    assert same_ids(np.array(["s-1", "s-4"]), a) == "no (+1 -2)"


def test_corpus_is_deterministic_with_planted_copies(tmp_path):
    one, two = build_corpus(500, 3, tmp_path / "a", hub=10), build_corpus(500, 3, tmp_path / "b", hub=10)
    files = sorted(p.name for p in one.glob("part-*.jsonl"))
    assert files and files == sorted(p.name for p in two.glob("part-*.jsonl"))
    assert all((one / f).read_bytes() == (two / f).read_bytes() for f in files)
    docs = [json.loads(line) for f in files for line in open(one / f, encoding="utf-8")]
    meta = json.loads((one / "corpus.json").read_text(encoding="utf-8"))
    assert len(docs) == 500 == meta["docs"] and len({d["id"] for d in docs}) == 500
    assert meta["hub"] == 10 and meta["exact_copies"] == 10 and meta["near_copies"] == 50
    texts = [d["text"] for d in docs]
    assert len(texts) - len(set(texts)) >= meta["exact_copies"]  # exact copies share their text


@pytest.mark.slow
def test_quick_run_prints_the_table(tmp_path):
    out = tmp_path / "scale.json"
    cmd = [sys.executable, "benchmarks/scale.py", "--quick", "--trees", "candidate", "--cache", str(tmp_path), "--results", str(out)]
    printed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True, timeout=300).stdout
    assert "| size | tree | wall s | s per 1k docs |" in printed
    saved = json.loads(out.read_text(encoding="utf-8"))
    [row] = saved["rows"]
    assert f"| {row['size']:,} | candidate |" in printed
    assert row["same_ids"] == "yes" and row["curated"] > 0
    assert row["counts"]["input"] == row["size"] and row["counts"]["kept"] == row["curated"]
    assert row["driver_peak_mib"] > 0 and row["worker_private_mib"] > 0 and row["executions"] > 0
    assert row["spilled_mib"] is not None, row["store_stats"]  # the raylet answered
    assert row["by_stage"]["dedup"]["exact_duplicate"] >= row["corpus"]["exact_copies"]
    assert row["by_stage"]["dedup"]["near_duplicate"] >= row["corpus"]["hub"] - 1  # the hub is one component
