"""Resume after the driver dies past the global dedup steps: the rerun redoes neither read+clean nor
dedup (their markers prove it) and its outputs equal an uninterrupted build's."""

from __future__ import annotations

import os
import signal
import time

import pytest

from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig
from tests.reliability.outputs import digest
from tests.reliability.test_resume import N_FILES, _cfg, start_build

pytestmark = pytest.mark.slow


def test_driver_killed_after_dedup_resumes_without_redoing_read_clean_or_dedup(ray_local, tmp_path):
    inputs, out, proc = start_build(ray_local, tmp_path)
    near_done = out / "_work" / "dedup" / "near" / "_DONE"
    deadline = time.time() + 400
    try:
        while time.time() < deadline and proc.poll() is None and not near_done.exists():
            time.sleep(0.02)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(30)
    assert near_done.exists() and not (out / "_SUCCESS").exists(), "the driver finished (or failed) before it could be killed"

    res = build_sft_data(RunConfig.model_validate(_cfg(inputs, out)))
    assert res.manifest["resume"] == {"units": N_FILES, "reused": N_FILES}  # read + clean: nothing redone
    steps = res.manifest["dedup"]["steps"]
    assert steps["exact"]["reused"] and steps["near"]["reused"], steps  # dedup: both steps reused
    print(f"\n[resume] rerun: {res.manifest['resume']}, dedup steps {steps}", flush=True)
    assert (out / "_SUCCESS").is_file() and not (out / "_work").exists()

    build_sft_data(RunConfig.model_validate(_cfg(inputs, tmp_path / "reference", resumable=False)))
    assert digest(out) == digest(tmp_path / "reference")
