"""The build's profile: Ray Data's own per-execution operator stats, gathered while a build runs
(sft_ray/time_profile.py), so a user sees where the time went: executions, scans, CPU per operator."""

from __future__ import annotations

import time

import pyarrow as pa

from sft_ray import time_profile


def test_recording_counts_executions_scans_and_cpu_per_operator(ray_local, tmp_path):
    ray = ray_local

    def _slow_square(batch: pa.Table) -> pa.Table:  # defined here: pickled by value for the workers
        t0 = time.process_time()
        while time.process_time() - t0 < 0.05:  # real CPU in the task, for the profile to see
            pass
        return batch.append_column("sq", pa.compute.multiply(batch["id"], batch["id"]))

    ray.data.range(2_000, override_num_blocks=4).write_parquet(str(tmp_path / "in"))  # before: not recorded
    with time_profile.recording() as prof:
        squared = ray.data.range(2_000, override_num_blocks=4).map_batches(_slow_square, batch_format="pyarrow").materialize()
        n = ray.data.read_parquet(str(tmp_path / "in")).count()
    p = prof.summary({"stage_s": 1.0, "total_s": 1.0})
    assert n == 2_000 and squared.count() == 2_000
    assert p["executions"] == 2 and p["scans"] == 1 and p["failed_executions"] == 0
    op = next(a for a in p["operators"] if "_slow_square" in a["name"])
    assert op["tasks"] >= 1 and op["rows_out"] == 2_000 and op["cpu_s"] >= 4 * 0.05 * 0.9  # 4 blocks, 50 ms of CPU each
    cpu = [a["cpu_s"] for a in p["operators"]]
    assert cpu == sorted(cpu, reverse=True)  # the largest first
    assert p["first_output_s"] is not None and p["startup_s"] <= p["first_output_s"]
    assert p["first_record_s"] == p["first_output_s"]  # no staging task told it otherwise: the first block out
    with time_profile.recording() as later:  # outside the block nothing is recorded; a new block starts empty
        pass
    assert later.summary({})["executions"] == 0 and time_profile._Recorder not in ray.data.DataContext.get_current().custom_execution_callback_classes


def test_process_start_is_when_the_process_started():
    """Within 50 ms of the moment the parent started it (psutil's create_time() was 1.0 s early on
    this project's machine: the kernel's boot time is whole seconds)."""
    import subprocess
    import sys

    before = time.time()
    out = subprocess.run([sys.executable, "-c", "from sft_ray.time_profile import process_start; print(repr(process_start()))"],
                         capture_output=True, text=True, check=True).stdout
    after = time.time()
    started = float(out)
    assert before - 0.05 <= started <= after, (before, started, after)
    assert started - before < 1.0  # the child's imports (ray.data) come after its start
