"""README's first command: the embedded demo's build, through the CLI as a user runs it, on this
session's Ray. Its output is complete, and its console is one screen: a run summary (no config
dump), progress, each line once, none of Ray's bookkeeping."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter

import pyarrow.parquet as pq
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow


def test_the_demo_builds_with_a_quiet_console(ray_local, tmp_path):
    out = tmp_path / "demo"
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    r = subprocess.run([sys.executable, "jobs/build_sft_data.py", "--set", f"output={out}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=900)
    console = (r.stdout + r.stderr).splitlines()
    print("\n".join(console))
    assert r.returncode == 0
    assert (out / "_SUCCESS").is_file() and (out / "README.md").is_file()
    train = pq.read_table(out / "sft" / "train")
    assert {"classification", "translation"} <= set(train.column("task").to_pylist())
    # The dataset card's `configs` let Hugging Face datasets load the folder as it is.
    import datasets

    ds = datasets.load_dataset(str(out))
    assert ds["train"].num_rows == train.num_rows and ds["validation"].num_rows > 0
    assert "non-commercial research" in (out / "README.md").read_text()

    text = [line for line in console if line.strip()]
    assert len(text) < 60, f"{len(text)} lines"
    logged = [line.split(" ", 1)[1] for line in text if re.match(r"\d\d:\d\d:\d\d ", line)]
    repeated = {line: n for line, n in Counter(logged).items() if n > 1}
    assert logged and not repeated, repeated  # every logged message once
    assert console[0].startswith("sft-ray build: output ") and any("source agnews (news, csv)" in line for line in console)
    assert not any(line.startswith(("resolved config", "  model: ", "  num_workers: ")) for line in console)  # no config dump
    assert any("read+clean: 2/2 units (100%)" in line for line in console)  # progress
    assert any("train and" in line and "validation SFT examples written" in line for line in console)
    for noise in ("execution finished", "Progress bars disabled", "Estimated parquet", "Registered dataset logger"):
        assert not any(noise in line for line in console), noise
    assert r.stdout.strip().splitlines()[-1].startswith("build finished in ")
