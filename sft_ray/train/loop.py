"""THE training loop: supervised fine-tuning on assistant tokens, one Ray Train worker's view.

Plain PyTorch, read top to bottom (nanoGPT's train.py, torchtune's full_finetune_distributed.py):
set up (load, wrap in DDP or FSDP with optional LoRA, optimizer, schedule) -> restore if resuming
-> evaluate the base model -> one `for` loop over optimizer steps -> evaluate the fine-tuned model
-> final checkpoint -> export. Ray supplies the process group, the data shard and checkpoint
storage; the driver (driver.py) supplies the `TrainPlan`; checkpoint.py says what a resume restores.

Things worth knowing before editing:
- The step count comes from the plan: `max_steps` when set, else `epochs` passes over the data,
  with the LR schedule sized from the build manifest's example count and a token-length sample
  (no counting pass over the data). Shards may still differ in length (rows dropped by
  tokenization, uneven packing), so before every optimizer step all ranks all-reduce "I have a full
  step of data" and the epoch ends for everyone when one rank runs dry (`optimizer_steps`). Without
  that, one rank would wait forever in the gradient all-reduce.
- Loss is the exact token mean over the whole global batch (all micro-batches on all ranks): each
  micro-batch contributes sum(token losses) * world / global_supervised_tokens, because DDP/FSDP
  average gradients over ranks. A per-micro-batch mean would over-weight short answers, and
  `tests/train/test_parity.py` holds 2 workers x b to the same curve as 1 worker x 2b.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator, NamedTuple

import ray.train
import ray.train.torch
import torch

from sft_ray import cards
from sft_ray.console import duration, setup_logging
from sft_ray.config import RunConfig, config_dict
from sft_ray.models import load_model, load_tokenizer, resolve_model
from sft_ray.storage import join, write_json, write_text
from sft_ray.train import checkpoint, parallel
from sft_ray.train.checkpoint import ExampleCounts, Progress, RankPosition
from sft_ray.train.evaluate import all_reduce_sum, evaluate, validation_batches
from sft_ray.train.chat_template import add_generation_markers
from sft_ray.train.export import export_adapter, export_dtypes, export_model
from sft_ray.train.loss import IGNORE, token_loss_sum
from sft_ray.train.task_eval import task_metrics
from sft_ray.train.tokenize import PadCollate, TorchCollate
from sft_ray.train.trackers import Trackers

if TYPE_CHECKING:
    from sft_ray.train.driver import TrainPlan

log = logging.getLogger("sft_ray")


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warmup then cosine decay to 0 (Loshchilov & Hutter 2017), as a multiple of the peak LR.

    Warmup starts at 1/(warmup+1), not 0 (HF's schedule spends the first step at lr 0), and the
    factor stays at 0 past `total` (an epoch-sized run whose packing estimate fell short).
    """
    if step < warmup:
        return (step + 1) / (warmup + 1)
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


def train_loop_per_worker(config: dict) -> None:
    cfg = RunConfig.model_validate(config["run"])
    plan: TrainPlan = config["plan"]
    tc = cfg.train
    w = _setup(cfg, plan)
    progress, position = checkpoint.restore(w.model, w.optimizer, w.scheduler, lora=tc.lora.enabled,
                                            rank=w.rank, world=w.world)
    if progress.done and progress.step < (tc.max_steps or 0):
        progress.done = False  # finished before, but max_steps was raised since: keep training
    # This rank's slice of the validation sample (eval_max_examples rows in all), tokenized once.
    val_batches = validation_batches(w.tokenizer, list(plan.val_rows[w.rank::w.world]), tc.max_seq_len,
                                     tc.batch_size, PadCollate(w.tokenizer.pad_token_id), w.device, tc.loss_on, tc.too_long)
    trackers = Trackers(tc, plan.train_dir, config_dict(cfg)["train"]) if w.rank == 0 else None
    if "base" not in progress.eval and not progress.done:
        progress.eval["base"] = _evaluate(w, tc, plan, val_batches, "base model")
        if w.rank == 0 and progress.eval["base"]:
            log.info("base model: %s", _eval_line(progress.eval["base"]))

    w.model.train()
    window = LogWindow.empty(w.device)
    clock = (time.perf_counter(), progress.step)  # for the ETA: this attempt's pace
    for step in optimizer_steps(w, tc, progress, position):
        for i, b in enumerate(step.micro):  # gradients are reduced across ranks on the last one only
            with parallel.no_sync(w.model, skip=i < len(step.micro) - 1):
                loss_sum, _ = token_loss_sum(w.model, b, w.autocast())
                (loss_sum * w.world / step.n_sup).backward()
            window.add_micro(loss_sum.detach(), b)
        grad_norm = parallel.grad_norm(w.model, tc.max_grad_norm)
        lr = w.scheduler.get_last_lr()[0]
        w.optimizer.step()
        w.scheduler.step()
        w.optimizer.zero_grad(set_to_none=True)
        progress.step += 1
        window.add_step(step)
        last = tc.max_steps is not None and progress.step == tc.max_steps
        if progress.step == 1 or progress.step % tc.log_every == 0 or last:  # step 1: the starting loss
            row = window.row(progress, lr, grad_norm, w.device)
            progress.history.append(row)
            window = LogWindow.empty(w.device)
            if w.rank == 0:
                _log_step(row, tc.max_steps or plan.total_steps, clock)
                _write_metrics(plan.train_dir, progress.history, cfg.storage_options)
                trackers.log(row)
        if progress.step % tc.checkpoint_every == 0 and not last:
            _save(w, cfg, progress, position)

    if not progress.done:
        progress.eval["finetuned"] = _evaluate(w, tc, plan, val_batches, "fine-tuned model")
        _count_examples(progress, position, plan, w.device)
        progress.done = True
        _save(w, cfg, progress, position)
    # Every rank: gathers under FSDP. LoRA: the PEFT model, whose adapter is saved before the merge.
    export = parallel.export_module(w.model, w.raw, tc, w.model_path, w.rank, merge=False)
    if w.rank == 0:
        _write_outputs(plan, progress, cfg.storage_options)
        if tc.lora.enabled:
            export_adapter(export, w.tokenizer, join(plan.train_dir, "adapter"), cfg.storage_options)
            export = export.merge_and_unload()
        # Generation markers once, here; save_hf's own call then finds them in place.
        card = cards.model_card(cfg, progress.eval, progress.step, add_generation_markers(w.tokenizer))
        export_model(export, w.tokenizer, join(plan.train_dir, "model"), cfg.storage_options, card=card)
        export_dtypes(export, w.tokenizer, plan.train_dir, tc.export_dtypes, cfg.storage_options)
        if tc.export_gguf:
            from sft_ray.train.gguf_export import export_gguf

            for qtype in tc.export_gguf:
                export_gguf(export, w.tokenizer, join(plan.train_dir, f"model.{qtype}.gguf"), qtype, cfg.storage_options)
        log.info("model exported to %s", join(plan.train_dir, "model"))
        trackers.close()


# ----------------------------------------------------------------------------------------- setup
@dataclass
class Worker:
    """This process's part of the run, built once by `_setup`."""

    rank: int
    world: int
    device: torch.device
    model_path: str
    tokenizer: Any
    model: Any
    """Wrapped for training (DDP or FSDP): forward/backward go through it so gradients sync."""
    raw: Any
    """The unwrapped module: evaluation and generation, where ranks must not wait for each other."""
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LambdaLR

    def autocast(self):
        # bf16 autocast on GPU (fp32 master weights and optimizer state); plain fp32 on CPU, where
        # bf16 matmuls are slower, not faster.
        if self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()


def _setup(cfg: RunConfig, plan: TrainPlan) -> Worker:
    tc = cfg.train
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    _setup_logging(rank)
    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    if not on_gpu:
        # One BLAS pool per reserved CPU: more threads than cores just fight the other workers.
        torch.set_num_threads(max(1, int(tc.cpus_per_worker)))
    model_path = plan.model_path
    if os.path.isabs(model_path) and not os.path.isdir(model_path):
        # The driver's cache folder is not on this node: convert / download here (once per node).
        model_path = resolve_model(tc.model, tc.trust_remote_code, tiny=tc.tiny, seed=tc.seed,
                                   storage_options=cfg.storage_options)
    tokenizer = load_tokenizer(model_path, tc.trust_remote_code)
    checkpoint.seed_everything(tc.seed)  # same LoRA init on every rank
    model = load_model(model_path, trust_remote_code=tc.trust_remote_code, attn_implementation=tc.attn_implementation)
    model.config.use_cache = False  # no KV cache while training: it only costs memory
    model, raw = parallel.prepare(model, tc, device)
    # Fused AdamW (one kernel for all parameters) on GPU: +8% tokens/s for a 1B model on an H200
    # (benchmarks/gpu_train_throughput.py); FSDP's sharded DTensors keep the default implementation.
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=tc.lr,
                                  weight_decay=tc.weight_decay, betas=(0.9, 0.95),
                                  fused=on_gpu and not parallel.is_fsdp(model) or None)
    total, warmup = plan.total_steps, plan.warmup_steps
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total))
    checkpoint.seed_everything(tc.seed + rank)  # dropout differs per rank; a resume restores it
    return Worker(rank, world, device, model_path, tokenizer, model, raw, optimizer, scheduler)


def _setup_logging(rank: int) -> None:
    """Rank 0's progress reaches the driver's console (Ray forwards worker output), each line once
    (console.py); the other ranks say only warnings."""
    setup_logging(logging.INFO if rank == 0 else logging.WARNING, worker=True)


# ------------------------------------------------------------------------------------------ data
class Step(NamedTuple):
    """One optimizer step's data, agreed on by all ranks."""

    micro: list[dict]
    """This rank's `grad_accum` micro-batches (empty ones already left out)."""
    n_sup: float
    """Supervised tokens in the step on all ranks: the loss denominator."""
    started: float
    """perf_counter() when fetching began: step time includes waiting for data."""
    data_time: float


def _steps_left(progress: Progress, tc) -> bool:
    """max_steps not reached (always true for an epoch-sized run)."""
    return tc.max_steps is None or progress.step < tc.max_steps


def _finished(progress: Progress, tc) -> bool:
    if progress.done:
        return True
    return progress.step >= tc.max_steps if tc.max_steps is not None else progress.epoch >= tc.epochs


def optimizer_steps(w: Worker, tc, progress: Progress, position: RankPosition) -> Iterator[Step]:
    """This rank's optimizer steps until the run is finished, epoch after epoch.

    Owns the data position: advances `position` as it takes micro-batches and `progress.epoch` at
    the end of each epoch; the caller advances `progress.step` before asking for the next step.
    A resumed epoch first skips the `position.batches_done` batches trained before the checkpoint.
    """
    collate = TorchCollate(w.tokenizer.pad_token_id, packed=tc.packing)
    shard = ray.train.get_dataset_shard("train")
    while not _finished(progress, tc):
        batches = iter(shard.iter_torch_batches(
            batch_size=tc.batch_size, collate_fn=collate, device=w.device,
            local_shuffle_buffer_size=tc.shuffle_buffer or None, local_shuffle_seed=tc.seed + progress.epoch))
        skip, position.batches_done, steps_this_epoch = position.batches_done, 0, 0
        while position.batches_done < skip and next(batches, None) is not None:
            position.batches_done += 1
        while _steps_left(progress, tc):
            started = time.perf_counter()
            micro, examples = _take(batches, tc.grad_accum, position, count=progress.epoch == 0)
            data_time = time.perf_counter() - started
            n_sup = float(sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in micro))
            ready, n_sup_global = all_reduce_sum([float(len(micro) == tc.grad_accum), n_sup], w.device)
            if ready < w.world:
                break  # some rank is out of data: end the epoch on every rank together
            if n_sup_global == 0:
                continue  # nothing to learn from in this step anywhere (cannot happen after tokenize)
            if progress.epoch == 0:
                position.counts.trained += examples  # a partial last step of an epoch is not trained on
            steps_this_epoch += 1
            yield Step(micro, n_sup_global, started, data_time)
        if steps_this_epoch == 0 and not _finished(progress, tc) and not skip:
            raise RuntimeError(f"epoch {progress.epoch} yielded no training step: sft/train has fewer usable "
                               f"examples than num_workers x batch_size x grad_accum")
        if _steps_left(progress, tc):
            progress.epoch += 1
            position.batches_done = 0


def _take(batches: Iterator[dict], n: int, position: RankPosition, count: bool) -> tuple[list[dict], int]:
    """Up to n non-empty micro-batches and the number of examples in them; rows tokenization
    dropped arrive as empty batches and are counted (when `count`) instead."""
    micro, examples = [], 0
    while len(micro) < n:
        b = next(batches, None)
        if b is None:
            break
        position.batches_done += 1
        if count:
            position.counts.add_dropped(b["drop_codes"].tolist())
        examples += int(b["num_examples"])
        if b["input_ids"].numel():
            micro.append(b)
    return micro, examples


# --------------------------------------------------------------------------------------- metrics
@dataclass
class LogWindow:
    """Sums over the steps since the last logged row."""

    loss: torch.Tensor
    """Sum of token losses, kept on the device: `.item()` per micro-batch would sync the GPU each time."""
    n_sup: float = 0.0
    tokens: int = 0
    slots: int = 0
    """Token positions including padding: tokens / slots is how well packing fills the batches."""
    steps: int = 0
    time: float = 0.0
    data_time: float = 0.0

    @staticmethod
    def empty(device) -> LogWindow:
        return LogWindow(loss=torch.zeros((), device=device))

    def add_micro(self, loss_sum: torch.Tensor, b: dict) -> None:
        self.loss += loss_sum
        self.tokens += int(b["num_tokens"])
        self.slots += b["input_ids"].numel()

    def add_step(self, step: Step) -> None:
        self.n_sup += step.n_sup
        self.steps += 1
        self.time += time.perf_counter() - step.started
        self.data_time += step.data_time

    def row(self, progress: Progress, lr: float, grad_norm: float, device) -> dict:
        """A metrics.jsonl row; every rank must call it (all-reduce)."""
        loss, tokens, slots = all_reduce_sum([self.loss.item(), self.tokens, self.slots], device)
        return {"step": progress.step, "epoch": progress.epoch, "loss": loss / self.n_sup, "lr": lr,
                "grad_norm": grad_norm, "tokens_per_s": tokens / self.time, "token_util": tokens / max(1.0, slots),
                "step_time": self.time / self.steps, "data_time": self.data_time / self.steps}


def _log_step(row: dict, of_steps: int, clock: tuple[float, int]) -> None:
    """One step line, with the ETA at this attempt's pace so far (a planned total, `~`, is an estimate)."""
    t0, step0 = clock
    done = row["step"] - step0
    eta = (time.perf_counter() - t0) / done * max(0, of_steps - row["step"]) if done > 0 else None
    log.info("step %d/%d  loss %.4f  lr %.2e  grad_norm %.3f  tok/s %.0f  util %.2f  step %.2fs (data %.2fs)%s",
             row["step"], of_steps, row["loss"], row["lr"], row["grad_norm"], row["tokens_per_s"],
             row["token_util"], row["step_time"], row["data_time"], f"  ETA {duration(eta)}" if eta is not None else "")


def _count_examples(progress: Progress, position: RankPosition, plan: TrainPlan, device) -> None:
    totals = all_reduce_sum(position.counts.as_vector(), device)
    progress.examples = ExampleCounts.from_vector(totals)
    if plan.n_train is not None and progress.epoch >= 1:
        # Examples of a full first epoch neither trained on nor dropped by tokenization: the rows
        # streaming_split(equal=True) holds back so every worker gets as many, and the
        # micro-batches of a last step some worker could not fill. Recorded, never silent.
        progress.left_over = plan.n_train - int(sum(totals))


# ------------------------------------------------------------------------------- eval, save, outputs
def _evaluate(w: Worker, tc, plan: TrainPlan, val_batches: list[dict], what: str) -> dict | None:
    """Validation loss (and task metrics) of the current weights; every rank must call it."""
    if not plan.val_rows:
        return None
    t0 = time.perf_counter()
    if w.rank == 0:
        log.info("evaluating the %s: loss on %d validation examples%s ...", what, len(plan.val_rows),
                 f", task metrics on {len(plan.task_rows)} (generation)" if plan.task_rows else "")
    out = evaluate(w.raw, val_batches, device=w.device, autocast=w.autocast())
    if plan.task_rows and not parallel.is_fsdp(w.model):
        # Generation on the unwrapped module; under FSDP every rank would have to run the same
        # number of forwards in lockstep, which free-running generation does not.
        out["tasks"] = task_metrics(w.raw, w.tokenizer, list(plan.task_rows[w.rank::w.world]), device=w.device,
                                    max_new_tokens=tc.max_new_tokens, batch_size=tc.batch_size,
                                    autocast=w.autocast(), max_prompt_len=tc.max_seq_len)
    if w.rank == 0:
        log.info("evaluated the %s in %s", what, duration(time.perf_counter() - t0))
    return out


def _save(w: Worker, cfg: RunConfig, progress: Progress, position: RankPosition) -> None:
    checkpoint.save(progress, position, model=w.model, optimizer=w.optimizer, scheduler=w.scheduler,
                    lora=cfg.train.lora.enabled, config=config_dict(cfg), rank=w.rank, world=w.world)


def _write_outputs(plan: TrainPlan, progress: Progress, storage_options: dict) -> None:
    """metrics.jsonl, eval.json and train_state.json (rank 0)."""
    _write_metrics(plan.train_dir, progress.history, storage_options)
    ev = progress.eval
    if ev.get("base"):
        write_json(join(plan.train_dir, "eval.json"), _eval_json(ev), storage_options)
        log.info("eval: base %s | fine-tuned %s", _eval_line(ev["base"]), _eval_line(ev["finetuned"]))
    examples = progress.examples or ExampleCounts()
    write_json(join(plan.train_dir, "train_state.json"), {
        "steps": progress.step, "epochs_completed": progress.epoch, "planned_steps": plan.total_steps,
        "train_examples_read": examples.trained if progress.examples else None,
        "train_examples_in_manifest": plan.n_train, "train_left_over_epoch_0": progress.left_over,
        "train_dropped": examples.dropped,
    }, storage_options)


def _eval_json(ev: dict) -> dict:
    """eval.json: validation loss/perplexity and task metrics, base vs fine-tuned."""
    out = {}
    for which in ("base", "finetuned"):
        e = ev[which]
        out[which] = {"loss": e["loss"], "perplexity": e["perplexity"]}
        if "tasks" in e:
            out[which]["tasks"] = {t: m for t, m in e["tasks"].items() if t != "samples"}
    out.update({k: ev["finetuned"][k] for k in ("examples", "tokens", "dropped")})
    if "tasks" in ev["finetuned"]:
        out["samples"] = {"base": ev["base"]["tasks"]["samples"], "finetuned": ev["finetuned"]["tasks"]["samples"]}
    return out


def _eval_line(e: dict) -> str:
    parts = [f"val loss {e['loss']:.4f} ppl {e['perplexity']:.2f}"]
    for task, m in sorted((e.get("tasks") or {}).items()):
        if task != "samples":
            parts.append(task + " " + " ".join(f"{k} {v:.1f}" for k, v in m.items() if k not in ("n", "skipped")))
    return "; ".join(parts)


def _write_metrics(train_dir: str, history: list[dict], storage_options: dict) -> None:
    """Rewrite metrics.jsonl whole: object stores cannot append, and the history is small."""
    write_text(join(train_dir, "metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in history), storage_options)
