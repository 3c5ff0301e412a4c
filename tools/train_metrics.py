"""Steady-state throughput of a fine-tuning run from its metrics.jsonl windows.

The training loop logs one metrics row every `log_every` steps (and at steps 1 and max_steps), each
the mean over its window; benchmarks/train_throughput.py leaves the same warm-up steps out of the Ray
runs' windows and of its plain loop, and aggregates the rest here.
"""

from __future__ import annotations


def logged_steps(steps: int, log_every: int) -> list[int]:
    """The steps that end a logged metrics window."""
    return sorted({1, steps} | set(range(log_every, steps + 1, log_every)))


def warmup_boundary(steps: int, log_every: int, warmup: int) -> int:
    """Last step left out as warm-up: the last logged step <= `warmup`, so the Ray metrics windows
    and the plain loop leave out exactly the same steps."""
    return max(s for s in logged_steps(steps, log_every) if s <= max(1, warmup))


def steady_metrics(metrics: list[dict], skip: int) -> dict:
    """Aggregate the metrics.jsonl windows after step `skip`: total real tokens / total step time."""
    rows = [r for r in metrics if "loss" in r]
    prev, tokens, slots, t, data_t, n = 0, 0.0, 0.0, 0.0, 0.0, 0
    for r in rows:
        steps = r["step"] - prev
        prev = r["step"]
        if r["step"] <= skip:
            continue
        wt = r["step_time"] * steps
        tokens += r["tokens_per_s"] * wt
        slots += r["tokens_per_s"] * wt / r["token_util"]
        t, data_t, n = t + wt, data_t + r["data_time"] * steps, n + steps
    if not n:
        raise RuntimeError(f"no metrics rows after step {skip}: {rows}")
    return {"tokens_per_s": tokens / t, "token_util": tokens / slots, "step_time": t / n, "data_time": data_t / n,
            "steady_steps": n, "loss_first": rows[0]["loss"], "loss_last": rows[-1]["loss"]}
