"""benchmarks/extraction_quality.py runs end to end on one page per gold corpus (as a script)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_runs_and_scores():
    cmd = [sys.executable, "benchmarks/extraction_quality.py", "--variants", "resiliparse", "--limit", "1", "--per-page"]
    out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "| resiliparse | all | 2 |" in out and "### Per page" in out
    with_ = float(re.search(r"^\| resiliparse \| all \| \d+ \| ([0-9.]+) \|", out, re.MULTILINE).group(1))  # the overall row
    assert 0 <= with_ <= 1
