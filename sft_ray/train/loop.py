"""THE training loop: supervised fine-tuning on assistant tokens, one Ray Train worker's view.

Plain PyTorch, read top to bottom (nanoGPT / torchtune style): load (or resume) -> evaluate the
base model -> steps -> evaluate the fine-tuned model -> final checkpoint -> export. Ray only
supplies the process group (`prepare_model` wraps DDP), the data shard and checkpoint storage.

Things worth knowing before editing:
- Step count is fixed by the driver from the build manifest (`plan["total_steps"]`); nothing here
  counts the dataset. Shards may still differ in length (rows dropped by tokenization, uneven
  splits), so before every optimizer step all ranks all-reduce "I have a full step of data" and the
  epoch ends for everyone when one rank runs dry. Without that, one rank would wait forever in
  DDP's gradient all-reduce.
- Loss is the exact token mean over the whole global batch (all micro-batches on all ranks): each
  micro-batch contributes sum(token losses) * world / global_supervised_tokens, because DDP averages
  gradients over ranks. A plain per-micro-batch mean would over-weight short answers.
- A checkpoint is the complete state: model (HF folder), optimizer, scheduler, step, epoch, each
  rank's position in the epoch and RNG state, the metric history and the resolved config (secrets
  redacted). Rank 0 writes it; every rank calls `ray.train.report` (it is a barrier).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import tempfile
import time
from collections import Counter

import numpy as np
import ray.train
import ray.train.torch
import torch
import torch.distributed as dist
from transformers import get_cosine_schedule_with_warmup

from sft_ray.config import RunConfig, config_dict
from sft_ray.models import load_model, load_tokenizer, resolve_model
from sft_ray.storage import join, write_json, write_text
from sft_ray.train.evaluate import all_reduce_sum, evaluate, token_loss_sum, validation_batches
from sft_ray.train.export import export_model
from sft_ray.train.tokenize import DROP_REASONS, IGNORE, PadCollate

log = logging.getLogger("sft_ray")

SHUFFLE_BUFFER = 1024  # rows; a local shuffle so examples grouped by task/source in files mix


def train_loop_per_worker(config: dict) -> None:
    cfg = RunConfig.model_validate(config["run"])
    tc, plan = cfg.train, config["plan"]
    train_dir = join(plan["output"], "train")
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    _setup_logging(rank)

    device = ray.train.torch.get_device()
    on_gpu = device.type == "cuda"
    if not on_gpu:
        # One BLAS pool per reserved CPU: more threads than cores just fight the other workers.
        torch.set_num_threads(max(1, int(tc.cpus_per_worker)))

    def amp():
        # bf16 autocast on GPU (fp32 master weights and optimizer state); plain fp32 on CPU, where
        # bf16 matmuls are slower, not faster.
        return torch.autocast("cuda", dtype=torch.bfloat16) if on_gpu else contextlib.nullcontext()

    # ---------------------------------------------------------------- model, optimizer, resume
    model_path = plan["model_path"]
    if os.path.isabs(model_path) and not os.path.isdir(model_path):
        # The driver's cache folder is not on this node: convert / download here (once per node).
        model_path = resolve_model(tc.model, tc.trust_remote_code, tiny=tc.tiny, seed=tc.seed,
                                   storage_options=cfg.storage_options)
    tokenizer = load_tokenizer(model_path, tc.trust_remote_code)
    _seed_everything(tc.seed + rank)

    state = {"step": 0, "epoch": 0, "done": False, "history": [], "eval": {}, "ranks": None}
    opt_state = sched_state = rng_states = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            with open(os.path.join(d, "state.json")) as f:
                state = json.load(f)
            model = load_model(os.path.join(d, "model"), trust_remote_code=tc.trust_remote_code)
            opt_state = torch.load(os.path.join(d, "optimizer.pt"), map_location="cpu", weights_only=True)
            sched_state = torch.load(os.path.join(d, "scheduler.pt"), weights_only=True)
            rng_states = torch.load(os.path.join(d, "rng.pt"), weights_only=False)
        log.info("resuming from checkpoint at step %d (epoch %d)", state["step"], state["epoch"])
    else:
        model = load_model(model_path, trust_remote_code=tc.trust_remote_code)
    model.config.use_cache = False  # no KV cache while training: it only costs memory

    model = ray.train.torch.prepare_model(model)  # to device; DDP when world > 1
    raw = getattr(model, "module", model)  # the HF model itself: for eval, save, export
    ddp = raw is not model

    optimizer = torch.optim.AdamW(raw.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.95))
    total = plan["total_steps"]
    scheduler = get_cosine_schedule_with_warmup(optimizer, plan["warmup_steps"], total)
    if opt_state is not None:
        optimizer.load_state_dict(opt_state)
        scheduler.load_state_dict(sched_state)

    if state["done"] and state["step"] < total:
        state["done"] = False  # finished before, but max_steps was raised since: keep training

    # Per-rank bookkeeping is only valid if the world size did not change since the checkpoint.
    ranks_state = state["ranks"] if state["ranks"] and len(state["ranks"]) == world else None
    if state["ranks"] and ranks_state is None:
        log.warning("world size changed (%d -> %d): restarting the epoch", len(state["ranks"]), world)
    if rng_states is not None and len(rng_states) == world:
        _set_rng(rng_states[rank])
    skip = ranks_state[rank]["batches_done"] if ranks_state else 0
    dropped = Counter({int(k): v for k, v in ranks_state[rank]["dropped"].items()}) if ranks_state else Counter()

    collate = PadCollate(tokenizer.pad_token_id)
    train_shard = ray.train.get_dataset_shard("train")
    # This rank's slice of the validation sample (eval_max_examples rows in all), tokenized once.
    val_batches = validation_batches(tokenizer, plan["val_rows"][rank::world], tc.max_seq_len, tc.batch_size,
                                     collate, device)

    def run_eval() -> dict | None:
        if not plan["val_rows"]:
            return None
        return evaluate(raw, val_batches, device=device, autocast=amp())

    if "base" not in state["eval"] and not state["done"]:
        state["eval"]["base"] = run_eval()
        if rank == 0 and state["eval"]["base"]:
            log.info("base model: val loss %.4f  ppl %.2f", state["eval"]["base"]["loss"], state["eval"]["base"]["perplexity"])

    def save_checkpoint(consumed: int) -> None:
        """Every rank gathers its position + RNG to rank 0; rank 0 writes; all ranks report."""
        mine = {"batches_done": consumed, "rng": _get_rng(), "dropped": dict(dropped)}
        everyone = [None] * world
        if world > 1:
            dist.all_gather_object(everyone, mine)
        else:
            everyone = [mine]
        metrics = {"step": state["step"], "epoch": state["epoch"], "done": state["done"]}
        if state["history"]:
            metrics["loss"] = state["history"][-1]["loss"]
        if rank != 0:
            ray.train.report(metrics)
            return
        state["ranks"] = [{k: v for k, v in r.items() if k != "rng"} for r in everyone]
        with tempfile.TemporaryDirectory(prefix="sft_ray_ckpt_") as tmp:
            raw.save_pretrained(os.path.join(tmp, "model"), safe_serialization=True)
            torch.save(optimizer.state_dict(), os.path.join(tmp, "optimizer.pt"))
            torch.save(scheduler.state_dict(), os.path.join(tmp, "scheduler.pt"))
            torch.save([r["rng"] for r in everyone], os.path.join(tmp, "rng.pt"))
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump({**state, "config": config_dict(cfg)}, f, indent=1, default=str)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                             checkpoint_dir_name=f"step_{state['step']:06d}")
        log.info("checkpoint at step %d", state["step"])

    # ---------------------------------------------------------------------------- training
    model.train()
    win = {"loss": torch.zeros((), device=device), "sup": 0.0, "tokens": 0, "steps": 0, "time": 0.0, "data_time": 0.0}
    consumed = skip  # raw batches of the current epoch this rank has taken (the resume position)
    while state["step"] < total and not state["done"]:
        if tc.max_steps is None and state["epoch"] >= tc.epochs:
            break  # epochs done: fewer steps than planned because tokenization dropped rows
        batches = iter(train_shard.iter_torch_batches(
            batch_size=tc.batch_size, collate_fn=collate, device=device,
            local_shuffle_buffer_size=SHUFFLE_BUFFER, local_shuffle_seed=tc.seed + state["epoch"]))
        consumed = 0
        for _ in range(skip):  # resume mid-epoch: fast-forward past batches already trained on
            if next(batches, None) is None:
                break
            consumed += 1
        skip = 0
        steps_this_epoch = 0
        while state["step"] < total:
            t0 = time.perf_counter()
            # 1. Fetch one optimizer step's worth of micro-batches (skipping rows tokenize dropped).
            micro = []
            while len(micro) < tc.grad_accum:
                b = next(batches, None)
                if b is None:
                    break
                consumed += 1
                if state["epoch"] == 0:
                    dropped.update(int(c) for c in b["drop_codes"].tolist())
                    dropped[0] += b["input_ids"].size(0)  # code 0 = kept
                if b["input_ids"].numel():
                    micro.append(b)
            t_data = time.perf_counter() - t0
            # 2. All ranks agree there is a full step everywhere, and on its supervised-token count.
            n_sup = float(sum(int((b["labels"][:, 1:] != IGNORE).sum()) for b in micro))
            ready, n_sup_global = all_reduce_sum([float(len(micro) == tc.grad_accum), n_sup], device)
            if ready < world:
                break  # some rank is out of data: end the epoch on every rank together
            if n_sup_global == 0:
                continue  # nothing to learn from in this step anywhere (cannot happen after tokenize)
            # 3. Forward/backward; DDP syncs gradients only on the last micro-batch.
            for i, b in enumerate(micro):
                sync = i == len(micro) - 1
                with contextlib.nullcontext() if (sync or not ddp) else model.no_sync():
                    loss_sum, _ = token_loss_sum(model, b, amp())
                    (loss_sum * world / n_sup_global).backward()
                win["loss"] += loss_sum.detach()
                win["tokens"] += int(b["attention_mask"].sum())
            grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), tc.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            state["step"] += 1
            steps_this_epoch += 1
            win["sup"] += n_sup_global
            win["steps"] += 1
            win["time"] += time.perf_counter() - t0
            win["data_time"] += t_data
            step = state["step"]
            # 4. Log (step 1 too, so the run shows its starting loss) and checkpoint.
            if step == 1 or step % tc.log_every == 0 or step == total:
                loss_total, tokens_total = all_reduce_sum([win["loss"].item(), win["tokens"]], device)
                row = {"step": step, "epoch": state["epoch"], "loss": loss_total / win["sup"], "lr": lr,
                       "grad_norm": float(grad_norm), "tokens_per_s": tokens_total / win["time"],
                       "step_time": win["time"] / win["steps"], "data_time": win["data_time"] / win["steps"]}
                state["history"].append(row)
                win = {"loss": torch.zeros((), device=device), "sup": 0.0, "tokens": 0, "steps": 0, "time": 0.0, "data_time": 0.0}
                if rank == 0:
                    log.info("step %d/%d  loss %.4f  lr %.2e  grad_norm %.3f  tok/s %.0f  step %.2fs (data %.2fs)",
                             step, total, row["loss"], lr, row["grad_norm"], row["tokens_per_s"], row["step_time"],
                             row["data_time"])
                    _write_metrics(train_dir, state["history"], cfg.storage_options)
            if step % tc.checkpoint_every == 0 and step < total:
                save_checkpoint(consumed)
        if steps_this_epoch == 0 and state["step"] < total:
            raise RuntimeError(f"epoch {state['epoch']} yielded no training step: sft/train has fewer usable "
                               f"examples than num_workers x batch_size x grad_accum")
        if state["step"] < total:
            state["epoch"] += 1
            consumed = 0

    # ------------------------------------------------------------------- evaluate, save, export
    if not state["done"]:
        if state["step"] < total and rank == 0:
            log.warning("data ran out after %d of %d planned steps", state["step"], total)
        state["eval"]["finetuned"] = run_eval()
        counts = all_reduce_sum([dropped[c] for c in range(len(DROP_REASONS))], device)
        state["train_examples_read"] = int(counts[0])
        state["train_dropped"] = {DROP_REASONS[c]: int(v) for c, v in enumerate(counts) if c and v}
        state["done"] = True
        save_checkpoint(consumed)
    if rank == 0:
        _write_metrics(train_dir, state["history"], cfg.storage_options)
        ev = state["eval"]
        if ev.get("base"):
            write_json(join(train_dir, "eval.json"), {
                "base": {k: ev["base"][k] for k in ("loss", "perplexity")},
                "finetuned": {k: ev["finetuned"][k] for k in ("loss", "perplexity")},
                "examples": ev["finetuned"]["examples"],
                "tokens": ev["finetuned"]["tokens"],
                "dropped": ev["finetuned"]["dropped"],
            }, cfg.storage_options)
            log.info("val loss %.4f -> %.4f", ev["base"]["loss"], ev["finetuned"]["loss"])
        write_json(join(train_dir, "train_state.json"), {
            "steps": state["step"], "epochs_started": state["epoch"] + 1,
            "train_examples_read": state.get("train_examples_read"), "train_dropped": state.get("train_dropped", {}),
        }, cfg.storage_options)
        export_model(raw, tokenizer, join(train_dir, "model"), cfg.storage_options)
        log.info("model exported to %s", join(train_dir, "model"))


# ------------------------------------------------------------------------------------- helpers
def _write_metrics(train_dir: str, history: list[dict], storage_options: dict) -> None:
    """Rewrite metrics.jsonl whole: object stores cannot append, and the history is small."""
    write_text(join(train_dir, "metrics.jsonl"), "".join(json.dumps(r) + "\n" for r in history), storage_options)


def _setup_logging(rank: int) -> None:
    # Ray Train workers start with bare logging; show rank 0's progress in the driver's output.
    if rank == 0 and not log.handlers:
        h = logging.StreamHandler()
        h.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
        log.addHandler(h)
        log.setLevel(logging.INFO)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _get_rng() -> dict:
    rng = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        rng["cuda"] = torch.cuda.get_rng_state_all()
    return rng


def _set_rng(rng: dict) -> None:
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    torch.set_rng_state(rng["torch"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
