"""What several benchmark scripts share: paths, the machine's load, markdown tables, peer venvs.

A benchmark script puts the repository root on sys.path, then imports from here, from tools/
(shared with tests and the data generators) and from sft_ray.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Generated corpora, peer venvs and run outputs: $SFT_RAY_BENCH_CACHE.
BENCH_CACHE = Path(os.environ.get("SFT_RAY_BENCH_CACHE", Path.home() / ".cache" / "sft_ray" / "bench"))


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min) on {os.cpu_count()} cores"


def table(header: list[str], rows: list[list]) -> str:
    """A markdown table; floats with 3 decimals."""
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return "\n".join(lines + ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows])


def mib(n: float) -> float:
    return round(n / 2**20, 1)


def ensure_venv(venv: Path, packages: list[str], probe: str) -> Path:
    """A peer's own virtual env (created with `packages` unless `import <probe>` works there); its python."""
    py = venv / "bin" / "python"
    if not (py.exists() and subprocess.run([str(py), "-c", f"import {probe}"], capture_output=True, check=False).returncode == 0):
        print(f"creating {venv} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(py), "-m", "pip", "install", "-q", *packages], check=True)
    return py


def topic_seed_and_held_out(rows: int):
    """The topic labeler's default seed (on the shared AG News test part when present, else the
    copy in sft_ray/demo/data) and `rows` balanced rows *not* in it: (spec, seed, texts, gold, names)."""
    import numpy as np

    from sft_ray.config import LabelConfig
    from sft_ray.label.seed import balanced_sample, load_seed, read_seed_rows
    from tools import CORPORA

    spec = LabelConfig().topic.seed
    ag = CORPORA / "news/ag_news/ag_news_test_part.csv"
    if ag.is_file():
        spec = spec.model_copy(update={"path": str(ag)})
    seed = load_seed(spec, where="topic")
    all_rows, names = read_seed_rows(spec, where="topic")
    used = set(seed.positions)
    held = [r for r in all_rows if r.position not in used]
    held = balanced_sample(held, names, min(rows, len(held)), seed=1)
    return spec, seed, [r.text for r in held], np.array([names.index(r.label) for r in held]), names

