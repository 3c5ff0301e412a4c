"""Steady-state throughput from a training run's metrics windows (tools/train_metrics.py)."""

from __future__ import annotations

import pytest

from tools import train_metrics


def test_warmup_boundary_matches_logged_windows():
    assert train_metrics.logged_steps(10, 4) == [1, 4, 8, 10]
    assert train_metrics.warmup_boundary(20, 2, 2) == 2
    assert train_metrics.warmup_boundary(20, 4, 2) == 1  # steps 2-4 share a window: only step 1 can be left out
    rows = [{"step": 1, "loss": 3.0, "tokens_per_s": 10.0, "token_util": 0.5, "step_time": 4.0, "data_time": 3.0},
            {"step": 2, "loss": 2.0, "tokens_per_s": 100.0, "token_util": 1.0, "step_time": 1.0, "data_time": 0.0},
            {"step": 4, "loss": 1.0, "tokens_per_s": 300.0, "token_util": 0.5, "step_time": 1.0, "data_time": 0.0}]
    s = train_metrics.steady_metrics(rows, skip=1)  # steps 2-4: 100 + 600 tokens in 3 s, 100 + 1200 slots
    assert s["steady_steps"] == 3 and s["tokens_per_s"] == pytest.approx(700 / 3)
    assert s["token_util"] == pytest.approx(700 / 1300) and s["data_time"] == 0.0
