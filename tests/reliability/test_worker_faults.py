"""Worker faults during the build: a Ray worker process is SIGKILLed mid-run, by
pid, from the test. Ray retries the lost tasks; the build succeeds and its outputs (ids and content
of curated/, rejects/, sft/) equal those of an undisturbed run.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig
from tests.conftest import DEMO_DATA
from tests.reliability.outputs import digest

pytestmark = pytest.mark.slow

AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


def _config(out: Path, inputs: Path) -> RunConfig:
    return RunConfig.model_validate({
        "output": str(out), "read_batch_size": 100, "dedup": {"num_partitions": 4},
        "sources": [{"name": "ag", "kind": "news", "format": "csv", "path": str(inputs / "*.csv"),
                     "fields": {"label": 0, "title": 1, "text": 2}, "label_names": AG_LABELS}],
    })


def _task_workers() -> dict[int, str]:
    """Ray worker processes currently running a Ray Data task (their title names the operator)."""
    found = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                cmd = (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if cmd.startswith("ray::") and any(op in cmd for op in ("MapBatches", "ReadFiles", "Map(", "FromItems", "Write")):
                found[int(d.name)] = cmd.strip()
    return found


def test_killed_worker_is_retried_and_output_equals_a_clean_run(ray_local, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    lines = (DEMO_DATA / "ag_news_test_part.csv").read_text().splitlines(keepends=True)
    for i in range(8):  # 8 files -> 8 read tasks, so the kill lands while others still run
        (inputs / f"part{i}.csv").write_text("".join(lines[i::8]))

    build_sft_data(_config(tmp_path / "clean", inputs))
    clean = digest(tmp_path / "clean")

    killed: list[str] = []
    stop = threading.Event()

    def killer():
        while not stop.is_set() and not killed:
            for pid, cmd in _task_workers().items():
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(f"{pid} {cmd[:80]}")
                    break
                except ProcessLookupError:
                    continue
            time.sleep(0.05)

    t = threading.Thread(target=killer, daemon=True)
    t.start()
    try:
        res = build_sft_data(_config(tmp_path / "faulted", inputs))
    finally:
        stop.set()
        t.join(5)
    print(f"\n[worker fault] killed: {killed}", flush=True)
    assert killed, "no Ray Data worker was seen running: nothing was killed"
    assert (tmp_path / "faulted" / "_SUCCESS").is_file() and not res.skipped
    assert digest(tmp_path / "faulted") == clean
