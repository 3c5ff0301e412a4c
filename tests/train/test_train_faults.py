"""Training worker faults: one Ray Train worker process is SIGKILLed mid-run, by pid, from the test.

Ray Train (FailureConfig.max_failures) restarts the worker group, the loop resumes from the last
checkpoint and the run still ends with exactly the planned number of optimizer steps. The metric
history is part of the checkpoint, so the rows logged after that checkpoint and before the kill
are discarded: metrics.jsonl ends with every step exactly once, plus a `resume` marker row
`{"event": "resume", "step": <checkpoint step>, "checkpoint": "step_0000NN"}` where the run picked up.
The resume is exact (weights, optimizer, schedule, RNG and data position all come back), so the
steps the failed attempt logged past the checkpoint are retrained to the same losses.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from sft_data import write_sft  # tests/train is on sys.path (pytest's rootdir-less import)

from sft_ray.config import RunConfig
from sft_ray.train import run_finetune

pytestmark = pytest.mark.slow

MAX_STEPS = 20
CKPT_EVERY = 4
BATCH = 8


def _cfg(out: Path) -> RunConfig:
    return RunConfig.model_validate({"output": str(out), "train": {
        # max_seq_len 64: two examples (~40-50 tokens each) never share a packed row, so with or
        # without packing an epoch has one row per example and more than MAX_STEPS steps.
        "model": "tiny-llama", "num_workers": 2, "batch_size": BATCH, "max_seq_len": 64, "lr": 1e-3,
        "max_steps": MAX_STEPS, "checkpoint_every": CKPT_EVERY, "max_failures": 2, "log_every": 1,
        "eval_max_examples": 4, "seed": 3}})


def _rows(out: Path) -> list[dict]:
    try:
        text = (out / "train" / "metrics.jsonl").read_text()
    except FileNotFoundError:
        return []
    rows = []
    for line in text.splitlines():
        try:
            rows.append(json.loads(line))
        except ValueError:  # read while rank 0 rewrites the file
            pass
    return rows


def _checkpoint_steps(out: Path) -> list[int]:
    d = out / "train" / "checkpoints"
    return sorted(int(n.removeprefix("step_")) for n in os.listdir(d) if n.startswith("step_")) if d.is_dir() else []


def _registered_steps(out: Path) -> list[int]:
    """Checkpoints Ray Train's controller has registered: those named in the checkpoint manager's
    snapshot, which it writes to storage on registering one. A checkpoint folder can exist before
    that (the controller polls the workers' reports), and a worker group restarted before then
    starts without it, so a kill meant to test resume must wait for the snapshot."""
    snap = out / "train" / "checkpoints" / "checkpoint_manager_snapshot.json"
    try:
        return sorted({int(m) for m in re.findall(r"step_(\d{6})", snap.read_text())})
    except OSError:
        return []


def _train_workers(exclude: frozenset[str] = frozenset()) -> dict[str, tuple[int, str]]:
    """actor id -> (pid, class name) of the live Ray Train worker actors (not the controller, not
    Ray Data), leaving out the actor ids in `exclude`.

    The session's Ray is shared with earlier tests, whose worker actors may still be listed ALIVE;
    killing one of those (as a CI run once did, picking the lowest pid) leaves this run untouched,
    so the test excludes the workers that were alive before its run started."""
    import ray
    from ray.util.state import list_actors

    # The session's own Ray, named: without an address the State API auto-discovers and fails (or
    # picks another cluster) when a second Ray runs on the machine.
    actors = list_actors(address=ray.get_runtime_context().gcs_address, filters=[("state", "=", "ALIVE")],
                         detail=True, raise_on_missing_output=False)
    print(f"[train fault] live actors: {sorted({a.class_name for a in actors})}", flush=True)
    return {a.actor_id: (a.pid, a.class_name) for a in actors
            if a.pid and "TrainWorker" in a.class_name and "Controller" not in a.class_name
            and a.actor_id not in exclude}


def _cpu_ticks(pid: int) -> int | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, IndexError, ValueError):
        return None


def _busy(workers: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """The listed workers whose process is alive, still hosts a Ray Train worker and is training
    (burns CPU over half a second). The State API is eventually consistent: an actor of an earlier
    run can still be listed ALIVE with a pid that is gone or now hosts another worker, and killing
    that pid would leave this run untouched."""
    def hosts_train_worker(pid: int) -> bool:
        try:
            return "RayTrainWorker" in Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
        except OSError:
            return False

    before = {pid: _cpu_ticks(pid) for pid, _ in workers if hosts_train_worker(pid)}
    time.sleep(0.5)
    busy = []
    for pid, name in workers:
        t0, t1 = before.get(pid), _cpu_ticks(pid)
        if t0 is not None and t1 is not None and t1 > t0:
            busy.append((pid, name))
    print(f"[train fault] listed workers {workers}, busy {busy}", flush=True)
    return busy


def _kill_a_worker_after_a_checkpoint(out: Path, run: threading.Thread, stale: frozenset[str]):
    """Wait until the run has trained >= 2 steps past a checkpoint (so Ray Train has registered it)
    and is still short of the end, SIGKILL one training worker. Returns (what was killed or None,
    the latest checkpoint step at the kill, {step: loss} logged before the kill)."""
    deadline = time.time() + 240
    while run.is_alive() and time.time() < deadline:
        ckpts = [c for c in _registered_steps(out) if c < MAX_STEPS]
        steps = [r["step"] for r in _rows(out) if "loss" in r and "event" not in r]
        if ckpts and steps and max(steps) >= ckpts[-1] + 2:
            if max(steps) >= MAX_STEPS - 1:
                break  # too late for a meaningful kill
            workers = _busy(sorted(_train_workers(stale).values()))
            if workers:
                pid, name = workers[0]
                os.kill(pid, signal.SIGKILL)
                pre_kill = {r["step"]: r["loss"] for r in _rows(out) if "loss" in r and "event" not in r}
                return (f"pid {pid} ({name}) after step {max(steps)}, last checkpoint step {ckpts[-1]}",
                        ckpts[-1], pre_kill)
        time.sleep(0.1)
    return None, None, {}


def test_killed_train_worker_resumes_from_checkpoint_and_finishes(tmp_path, ray_local):
    out = write_sft(tmp_path / "run", n_train=2 * BATCH * (MAX_STEPS + 4), n_val=4)  # one epoch > MAX_STEPS steps
    result: dict = {}

    def train():
        try:
            result["summary"] = run_finetune(_cfg(out))
        except BaseException as e:  # noqa: BLE001 - re-raised in the test thread
            result["error"] = e

    t = threading.Thread(target=train, daemon=True)
    stale = frozenset(_train_workers())
    print(f"[train fault] train workers alive before the run: {len(stale)}", flush=True)
    t.start()

    try:
        killed, seen_ckpt, pre_kill = _kill_a_worker_after_a_checkpoint(out, t, stale)
    finally:
        t.join(400)  # also when the kill failed: no training run left behind for the next test
    print(f"\n[train fault] killed: {killed}", flush=True)
    if not killed and "error" in result:
        raise result["error"]
    assert killed, (f"no training worker was killed mid-run (checkpoints: {_checkpoint_steps(out)}, logged steps: "
                    f"{[r.get('step') for r in _rows(out)]}): the run was too fast or too slow for the kill window")
    assert not t.is_alive(), "training did not finish within 400 s of the kill"
    if "error" in result:
        raise result["error"]
    assert result["summary"]["steps"] == MAX_STEPS

    train_dir = out / "train"
    train_state = json.loads((train_dir / "train_state.json").read_text())
    assert train_state["steps"] == MAX_STEPS
    # Examples read are counted once: the retrained steps' rows are not counted a second time (the
    # count is restored from the checkpoint with each rank's position). One row per example here.
    assert train_state["train_examples_read"] == MAX_STEPS * 2 * BATCH
    rows = _rows(out)
    print(f"[train fault] metrics rows: {[r.get('event') or r['step'] for r in rows]}", flush=True)

    # Each step logged exactly once and in order: rows logged after the resumed checkpoint and
    # before the kill were dropped with the rest of the pre-kill history.
    step_rows = [r for r in rows if "event" not in r]
    assert [r["step"] for r in step_rows] == list(range(1, MAX_STEPS + 1))
    assert all(r["loss"] > 0 for r in step_rows)
    # The resume is exact: same weights, optimizer, schedule, RNG and data position (the row order
    # is fixed and each rank fast-forwards past the batches it had trained on), so the steps the
    # failed attempt logged and the resumed attempt trained again have the same loss.
    final = {r["step"]: r["loss"] for r in step_rows}
    print(f"[train fault] loss before kill vs final: {[(s, pre_kill[s], final[s]) for s in sorted(pre_kill)]}",
          flush=True)
    for s in sorted(pre_kill):
        assert final[s] == pytest.approx(pre_kill[s], rel=1e-5), f"step {s}: {pre_kill[s]} before the kill, {final[s]} after"

    resumes = [(i, r) for i, r in enumerate(rows) if r.get("event") == "resume"]
    assert len(resumes) == 1, f"one kill, one resume marker expected: {rows}"
    for i, r in resumes:
        step = r["step"]
        # The resume point is a checkpoint the run wrote: at or after the one seen before the kill.
        assert step % CKPT_EVERY == 0 and seen_ckpt <= step < MAX_STEPS, r
        assert r["checkpoint"] == f"step_{step:06d}", r
        # It sits where the run picked up: after the row of its step, before the next step's row.
        before = [x["step"] for x in rows[:i] if "event" not in x]
        after = [x["step"] for x in rows[i + 1:] if "event" not in x]
        assert before and before[-1] == step and (not after or after[0] == step + 1), (r, rows)

    # The exported model is a from_pretrained-ready folder.
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(train_dir / "model")
    assert model.num_parameters() > 0
