"""What a training checkpoint holds, and how it is saved and restored.

Resume contract: a worker restarted from the checkpoint of step N (after a worker died, or on a
rerun into the same output with a larger `max_steps`) continues as if it had never stopped. It gets
back the weights and optimizer moments, the LR schedule's position, the step and epoch counters,
its own RNG states and position in its data shard (the shard's row order is fixed by
`preserve_order`, so skipping `batches_done` batches lands on the next untrained example), its
example counts, the evaluations done so far and the metric history up to step N. Rows the failed
attempt logged after step N are gone with it, so every step is logged once. Only when the number of
workers changed since the checkpoint do the per-rank parts (position, RNG, counts) not apply: the
epoch then restarts from its first batch.

A checkpoint directory (`<output>/train/checkpoints/step_NNNNNN`, Ray Train storage):
    model.pt, optimizer.pt  full (unsharded) state dicts, parallel.py; with LoRA the adapters only
    scheduler.pt            LR scheduler state
    rng.pt                  every rank's RNG states, by rank
    state.json              `Progress`, every rank's `RankPosition` and the resolved config
                            (secrets redacted), readable without torch

Every rank takes part in a save: the state dicts are gathered with collectives under FSDP and the
per-rank positions with an all-gather; rank 0 writes, and every rank calls `ray.train.report`
(Ray Train waits for all of them).
"""

from __future__ import annotations

import json
import logging
import os
import random
import tempfile
from dataclasses import asdict, dataclass, field

import numpy as np
import ray.train
import torch
import torch.distributed as dist

from sft_ray.train import parallel
from sft_ray.train.tokenize import DROP_REASONS

log = logging.getLogger("sft_ray")

_REASONS = DROP_REASONS[1:]  # DROP_REASONS[0] is "kept", not a reason


@dataclass
class ExampleCounts:
    """What became of one rank's training examples in the first epoch (later epochs see the same
    rows again and are not counted)."""

    trained: int = 0
    """Examples in optimizer steps taken (a partial last step of an epoch is not taken)."""
    dropped: dict[str, int] = field(default_factory=dict)
    """Rows skipped because tokenization left nothing to learn from, by drop reason."""

    def add_dropped(self, codes) -> None:
        for c in codes:
            reason = DROP_REASONS[int(c)]
            self.dropped[reason] = self.dropped.get(reason, 0) + 1

    def as_vector(self) -> list[float]:
        """Fixed-order numbers for an all-reduce; `from_vector` reads them back."""
        return [self.trained] + [self.dropped.get(r, 0) for r in _REASONS]

    @staticmethod
    def from_vector(v: list[float]) -> ExampleCounts:
        return ExampleCounts(int(v[0]), {r: int(n) for r, n in zip(_REASONS, v[1:]) if n})


@dataclass
class RankPosition:
    """Where one rank is in its data shard."""

    batches_done: int = 0
    """Micro-batches of the current epoch taken from the shard (trained on, dropped or left over)."""
    counts: ExampleCounts = field(default_factory=ExampleCounts)
    """First-epoch example counts so far."""


@dataclass
class Progress:
    """The loop's run-wide state: the same on every rank."""

    step: int = 0
    """Optimizer steps taken."""
    epoch: int = 0
    """Current pass over the data (0-based)."""
    done: bool = False
    """Training, final evaluation and final counts are finished; a resume only re-exports."""
    history: list[dict] = field(default_factory=list)
    """metrics.jsonl rows so far: logged steps and `{"event": "resume", ...}` markers."""
    eval: dict[str, dict | None] = field(default_factory=dict)
    """"base" / "finetuned": `evaluate.evaluate` results (None without validation data)."""
    examples: ExampleCounts | None = None
    """All ranks' first-epoch counts, summed when training ends."""
    left_over: int | None = None
    """Manifest examples of a full first epoch neither trained on nor dropped, set when training ends."""


@dataclass
class Checkpoint:
    """Everything a resume needs; see the module docstring for the contract."""

    progress: Progress
    positions: list[RankPosition]
    """Every rank's data position, by rank."""
    rng: list[dict]
    """Every rank's RNG states (`capture_rng`), by rank."""
    model: dict
    """Full model state dict (LoRA: trainable adapter tensors only)."""
    optimizer: dict
    """Full optimizer state dict."""
    scheduler: dict
    config: dict
    """The resolved run config, secrets redacted: what produced these weights."""


# ------------------------------------------------------------------------------------------- RNG
def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng() -> dict:
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def restore_rng(rng: dict) -> None:
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])


# ------------------------------------------------------------------------------------- files
def write(ckpt: Checkpoint, directory: str) -> None:
    torch.save(ckpt.model, os.path.join(directory, "model.pt"))
    torch.save(ckpt.optimizer, os.path.join(directory, "optimizer.pt"))
    torch.save(ckpt.scheduler, os.path.join(directory, "scheduler.pt"))
    torch.save(ckpt.rng, os.path.join(directory, "rng.pt"))
    state = {**asdict(ckpt.progress), "positions": [asdict(p) for p in ckpt.positions], "config": ckpt.config}
    with open(os.path.join(directory, "state.json"), "w") as f:
        json.dump(state, f, indent=1, default=str)


def read(directory: str) -> Checkpoint:
    with open(os.path.join(directory, "state.json")) as f:
        state = json.load(f)
    positions = [RankPosition(p["batches_done"], ExampleCounts(**p["counts"])) for p in state.pop("positions")]
    config = state.pop("config")
    examples = state.pop("examples")
    progress = Progress(**state, examples=ExampleCounts(**examples) if examples else None)
    return Checkpoint(
        progress=progress, positions=positions, config=config,
        model=torch.load(os.path.join(directory, "model.pt"), weights_only=True),
        # Optimizer and RNG states hold Python objects (param groups, numpy's state tuple).
        optimizer=torch.load(os.path.join(directory, "optimizer.pt"), weights_only=False),
        scheduler=torch.load(os.path.join(directory, "scheduler.pt"), weights_only=True),
        rng=torch.load(os.path.join(directory, "rng.pt"), weights_only=False),
    )


def _is_current(directory: str) -> bool:
    if not os.path.exists(os.path.join(directory, "model.pt")):
        return False
    with open(os.path.join(directory, "state.json")) as f:
        return "positions" in json.load(f)


# ------------------------------------------------------------------------------- save / restore
def save(progress: Progress, position: RankPosition, *, model, optimizer, scheduler, lora: bool, config: dict,
         rank: int, world: int) -> None:
    """Checkpoint the run at `progress.step`. Every rank must call it (collectives)."""
    mine = (position, capture_rng())
    everyone = [None] * world
    if world > 1:
        dist.all_gather_object(everyone, mine)
    else:
        everyone = [mine]
    model_sd = parallel.model_state(model, lora)  # collectives under FSDP: every rank calls them
    optim_sd = parallel.optim_state(model, optimizer, lora)
    metrics = {"step": progress.step, "epoch": progress.epoch, "done": progress.done}
    losses = [r["loss"] for r in progress.history if "loss" in r]
    if losses:
        metrics["loss"] = losses[-1]
    if rank != 0:
        ray.train.report(metrics)
        return
    ckpt = Checkpoint(progress=progress, positions=[p for p, _ in everyone], rng=[r for _, r in everyone],
                      model=model_sd, optimizer=optim_sd, scheduler=scheduler.state_dict(), config=config)
    with tempfile.TemporaryDirectory(prefix="sft_ray_ckpt_") as tmp:
        write(ckpt, tmp)
        ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                         checkpoint_dir_name=f"step_{progress.step:06d}")
    log.info("checkpoint at step %d", progress.step)


def restore(model, optimizer, scheduler, *, lora: bool, rank: int, world: int) -> tuple[Progress, RankPosition]:
    """Load Ray Train's latest checkpoint, if any, into the prepared model, optimizer and scheduler
    and this process's RNG; returns the run's progress and this rank's data position (fresh ones
    when there is no checkpoint)."""
    found = ray.train.get_checkpoint()
    if not found:
        return Progress(), RankPosition()
    with found.as_directory() as d:
        if not _is_current(d):
            raise RuntimeError(f"checkpoint {found.path} was written by an older sft_ray; train into a new output "
                               f"(or delete its checkpoints folder)")
        ckpt = read(d)
    parallel.load_state(model, optimizer, ckpt.model, ckpt.optimizer, lora)
    scheduler.load_state_dict(ckpt.scheduler)
    progress = ckpt.progress
    name = os.path.basename(found.path.rstrip("/"))
    progress.history.append({"event": "resume", "step": progress.step, "checkpoint": name})
    log.info("resuming from checkpoint %s at step %d (epoch %d)", name, progress.step, progress.epoch)
    if len(ckpt.positions) != world:
        log.warning("world size changed (%d -> %d): restarting the epoch", len(ckpt.positions), world)
        return progress, RankPosition()
    restore_rng(ckpt.rng[rank])
    return progress, ckpt.positions[rank]
