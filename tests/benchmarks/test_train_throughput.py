"""Smoke test of benchmarks/train_throughput.py: --quick runs every measurement (plain loop, Ray
1 worker packed and unpacked, Ray 2 workers) on a tiny model and prints/writes the whole table.
No timing assertions: this machine's speed says nothing about the code. The run takes ~4 min on 2
cores, almost all of it the fixed start-up of three run_finetune calls (~60 s each), not training."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

MEASURES = {
    "Ray overhead": {"plain PyTorch loop, 1 process", "Ray Train, 1 worker (run_finetune)", "overhead = 1 - ray/plain"},
    "Packing": {"token util, packed (Ray metrics)", "token util, unpacked (Ray metrics)",
                "token util, packed (whole set, collate)", "token util, unpacked (whole set, collate)",
                "tokens/s packed (Ray, 1 worker)", "tokens/s unpacked (Ray, 1 worker)", "speed-up packed/unpacked"},
    "Scaling": {"1 worker x 1 CPU", "2 workers x 1 CPU (DDP, gloo)", "2 workers / 1 worker"},
}


@pytest.mark.slow
def test_quick_run_reports_every_row(tmp_path):
    cmd = [sys.executable, "benchmarks/train_throughput.py", "--quick", "--json", str(tmp_path / "r.json")]
    printed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    saved = json.loads((tmp_path / "r.json").read_text())
    got: dict[str, set] = {}
    for r in saved["rows"]:
        got.setdefault(r["section"], set()).add(r["measure"])
        assert r["measure"] in printed
        if r["measure"] != "overhead = 1 - ray/plain":  # may be negative: Ray can beat the plain loop
            assert r["value"] > 0, r
        assert r["value"] == r["value"]  # not NaN
    assert got == MEASURES
    runs = saved["runs"]
    assert set(runs) == {"plain_1", "plain_2", "ray_1w", "ray_1w_unpacked", "ray_2w"}
    assert all(r["tokens_per_s"] > 0 and 0 < r["token_util"] <= 1 for r in runs.values())
    assert all(runs[k]["steps"] == 4 for k in ("ray_1w", "ray_1w_unpacked", "ray_2w"))
    assert runs["ray_1w"]["token_util"] > runs["ray_1w_unpacked"]["token_util"]
