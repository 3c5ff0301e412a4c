"""Small pieces of the training driver and loop: LR schedule, step planning with packing, the
task-balanced validation sample, and tracker options failing early."""

from __future__ import annotations

import importlib.util
import math

import pytest

from sft_ray.config import RunConfig, TrainConfig
from sft_ray.train import plan_steps, task_sample
from sft_ray.train.loop import lr_factor
from sft_ray.train.trackers import Trackers


def test_lr_warms_up_from_above_zero_then_decays_to_zero_and_stays():
    f = [lr_factor(s, warmup=4, total=20) for s in range(25)]
    assert f[0] == pytest.approx(1 / 5) and f[3] == pytest.approx(4 / 5)  # the first step learns
    assert f[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(f[4:], f[5:]))  # cosine: non-increasing
    assert f[12] == pytest.approx(0.5 * (1 + math.cos(math.pi * 8 / 16)))
    assert f[20] == pytest.approx(0.0, abs=1e-12) and f[24] == pytest.approx(0.0, abs=1e-12)  # past total: stays


def test_plan_steps_counts_packed_rows_not_examples():
    cfg = RunConfig.model_validate({"train": {"num_workers": 2, "batch_size": 4, "epochs": 1}})
    # 1000 examples at 0.25 packed rows each = 250 rows = 125 per worker = 32 micro-batches of 4.
    assert plan_steps(cfg, 1000, rows_per_example=0.25)["steps_per_epoch"] == 32
    assert plan_steps(cfg, 1000)["steps_per_epoch"] == 125


def test_task_sample_is_round_robin_over_tasks():
    tasks = ["classification"] * 50 + ["translation"] * 50 + ["qa"] * 3
    picked = [tasks[i] for i in task_sample(tasks, 9)]
    assert picked.count("qa") == 3 and picked.count("classification") == 3 and picked.count("translation") == 3
    assert task_sample(tasks, 0) == []


@pytest.mark.skipif(importlib.util.find_spec("tensorboard") is not None, reason="tensorboard installed")
def test_tensorboard_without_the_package_fails_at_start_with_its_name(tmp_path):
    tc = TrainConfig(tensorboard=True)
    with pytest.raises(ImportError, match="pip install tensorboard"):
        Trackers(tc, str(tmp_path), {})
