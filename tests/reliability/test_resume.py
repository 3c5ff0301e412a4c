"""Resume after the driver dies: a build is SIGKILLed half-way through read+clean;
the rerun reuses the input files whose markers exist, redoes only the rest, and its outputs equal
those of an uninterrupted run made without staging (so the staged path changes nothing either).
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig
from tests.conftest import DEMO_DATA, REPO
from tests.reliability.outputs import digest

pytestmark = pytest.mark.slow
N_FILES = 16


def _corpus(d: Path) -> None:
    """Web-kind documents of ~20 AG News descriptions each, so every web filter has work to do."""
    with open(DEMO_DATA / "ag_news_test_part.csv", newline="") as f:
        descs = [r[2] for r in csv.reader(f)]
    d.mkdir()
    for i in range(N_FILES):
        with open(d / f"part{i:02d}.jsonl", "w") as f:
            for j in range(120):
                k = (i * 120 + j) * 7
                text = "\n".join(descs[(k + m) % len(descs)] for m in range(20))
                f.write(json.dumps({"id": f"{i}-{j}", "text": text}) + "\n")


def _cfg(d: Path, out: Path, **extra) -> dict:
    # One unit per file (staging.group_small_files=false): these tests resume at file granularity.
    return {"output": str(out), "dedup": {"num_partitions": 2}, "staging": {"group_small_files": False},
            "sources": [{"name": "web", "kind": "web", "format": "jsonl", "path": str(d / "*.jsonl"), "langs": {"text": "en"}}], **extra}


def start_build(ray_local, tmp_path: Path) -> tuple[Path, Path, subprocess.Popen]:
    """The corpus under tmp_path/in and a build of it into tmp_path/out, its driver in its own process
    on this test's Ray cluster (so killing it kills only the job). Returns (inputs, out, process)."""
    inputs = tmp_path / "in"
    _corpus(inputs)
    out = tmp_path / "out"
    path = tmp_path / "build.yaml"
    path.write_text(yaml.safe_dump(_cfg(inputs, out)))
    env = {**os.environ, "RAY_ADDRESS": ray_local.get_runtime_context().gcs_address}
    proc = subprocess.Popen([sys.executable, "jobs/build_sft_data.py", "--config", str(path)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    return inputs, out, proc


def test_killed_driver_resumes_only_unfinished_files(ray_local, tmp_path):
    inputs, out, proc = start_build(ray_local, tmp_path)
    markers = out / "_work" / "clean"
    done_at_kill = 0
    deadline = time.time() + 300
    try:
        while time.time() < deadline and proc.poll() is None:
            done_at_kill = len(list(markers.glob("*.done"))) if markers.exists() else 0
            if done_at_kill >= 3:
                os.killpg(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    print(f"\n[resume] driver killed with {done_at_kill}/{N_FILES} files done", flush=True)
    assert 3 <= done_at_kill < N_FILES, "the driver finished (or never started) before it could be killed"
    assert not (out / "_SUCCESS").exists()

    res = build_sft_data(RunConfig.model_validate(_cfg(inputs, out)))
    resume = res.manifest["resume"]
    print(f"[resume] rerun: {resume}", flush=True)
    assert resume["units"] == N_FILES and done_at_kill <= resume["reused"] < N_FILES
    assert (out / "_SUCCESS").is_file() and not (out / "_work").exists()

    build_sft_data(RunConfig.model_validate(_cfg(inputs, tmp_path / "reference", resumable=False)))
    assert digest(out) == digest(tmp_path / "reference")
    c = res.manifest["counts"]
    assert c["input"] == N_FILES * 120 == c["kept"] + c["rejected"]


def test_changed_config_does_not_reuse_staged_work(ray_local, tmp_path):
    inputs = tmp_path / "in"
    _corpus(inputs)
    out = tmp_path / "out"
    work = out / "_work" / "clean"
    work.mkdir(parents=True)
    # A stale marker from a run with another configuration: must not be trusted.
    (out / "_work" / "fingerprint.json").write_text(json.dumps({"fingerprint": "something-else"}))
    (work / "web-stale.done").write_text("{}")
    res = build_sft_data(RunConfig.model_validate(_cfg(inputs, out)))
    assert res.manifest["resume"] == {"units": N_FILES, "reused": 0}
