"""THE training loop: supervised fine-tuning on assistant tokens, one Ray Train worker's view.

Plain PyTorch, read top to bottom (nanoGPT / torchtune style): load -> wrap (DDP or FSDP, optional
LoRA) -> resume -> evaluate the base model -> steps -> evaluate the fine-tuned model -> final
checkpoint -> export. Ray supplies the process group, the data shard and checkpoint storage.

Things worth knowing before editing:
- The step count comes from the driver (`plan`): `max_steps` when set, else `epochs` passes over
  the data with the LR schedule sized from the build manifest's example count and a token-length
  sample (no counting pass over the data). Shards may still differ in length (rows dropped by
  tokenization, uneven packing), so before every optimizer step all ranks all-reduce "I have a full
  step of data" and the epoch ends for everyone when one rank runs dry. Without that, one rank
  would wait forever in the gradient all-reduce.
- Loss is the exact token mean over the whole global batch (all micro-batches on all ranks): each
  micro-batch contributes sum(token losses) * world / global_supervised_tokens, because DDP/FSDP
  average gradients over ranks. A per-micro-batch mean would over-weight short answers, and
  `tests/train/test_parity.py` holds 2 workers x b to the same curve as 1 worker x 2b.
- A checkpoint is the complete state: model and optimizer (full state dicts, parallel.py; LoRA:
  adapters only), scheduler, step, epoch, each rank's position in the epoch and RNG state, the
  metric history and the resolved config (secrets redacted). Every rank takes part in gathering
  the state (a collective under FSDP), rank 0 writes it, and every rank calls `ray.train.report`.
- A resume appends `{"event": "resume", "step", "checkpoint"}` to metrics.jsonl, after the rows
  restored from the checkpoint; rows logged after that checkpoint by the failed attempt are gone,
  so every step appears once.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
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

from sft_ray.config import RunConfig, config_dict
from sft_ray.models import load_model, load_tokenizer, resolve_model
from sft_ray.storage import join, write_json, write_text
from sft_ray.train import parallel
from sft_ray.train.evaluate import all_reduce_sum, evaluate, validation_batches
from sft_ray.train.export import export_model
from sft_ray.train.loss import IGNORE, token_loss_sum
from sft_ray.train.task_eval import task_metrics
from sft_ray.train.tokenize import DROP_REASONS, PadCollate, TorchCollate
from sft_ray.train.trackers import Trackers

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

    # ------------------------------------------------------------------- model, optimizer, resume
    model_path = plan["model_path"]
    if os.path.isabs(model_path) and not os.path.isdir(model_path):
        # The driver's cache folder is not on this node: convert / download here (once per node).
        model_path = resolve_model(tc.model, tc.trust_remote_code, tiny=tc.tiny, seed=tc.seed,
                                   storage_options=cfg.storage_options)
    tokenizer = load_tokenizer(model_path, tc.trust_remote_code)
    _seed_everything(tc.seed)  # same LoRA init on every rank
    model = load_model(model_path, trust_remote_code=tc.trust_remote_code, attn_implementation=tc.attn_implementation)
    model.config.use_cache = False  # no KV cache while training: it only costs memory
    model, raw = parallel.prepare(model, tc, device)
    fsdp, lora = parallel.is_fsdp(model), tc.lora.enabled
    # Fused AdamW (one kernel for all parameters) on GPU: +8% tokens/s for a 1B model on an H200
    # (benchmarks/gpu_train_throughput.py); FSDP's sharded DTensors keep the default implementation.
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=tc.lr,
                                  weight_decay=tc.weight_decay, betas=(0.9, 0.95), fused=on_gpu and not fsdp or None)
    total, warmup = plan["total_steps"], plan["warmup_steps"]
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total))
    _seed_everything(tc.seed + rank)

    state = {"step": 0, "epoch": 0, "done": False, "history": [], "eval": {}, "ranks": None}
    rng_states = None
    checkpoint = ray.train.get_checkpoint()
    if checkpoint:
        with checkpoint.as_directory() as d:
            if not os.path.exists(os.path.join(d, "model.pt")):
                raise RuntimeError(f"checkpoint {checkpoint.path} has no model.pt: it was written by an older "
                                   f"sft_ray; train into a new output (or delete {train_dir}/checkpoints)")
            with open(os.path.join(d, "state.json")) as f:
                state = json.load(f)
            parallel.load_state(model, optimizer, torch.load(os.path.join(d, "model.pt"), weights_only=True),
                                torch.load(os.path.join(d, "optimizer.pt"), weights_only=False), lora)
            scheduler.load_state_dict(torch.load(os.path.join(d, "scheduler.pt"), weights_only=True))
            rng_states = torch.load(os.path.join(d, "rng.pt"), weights_only=False)
        name = os.path.basename(checkpoint.path.rstrip("/"))
        state["history"].append({"event": "resume", "step": state["step"], "checkpoint": name})
        log.info("resuming from checkpoint %s at step %d (epoch %d)", name, state["step"], state["epoch"])

    if state["done"] and state["step"] < (tc.max_steps or 0):
        state["done"] = False  # finished before, but max_steps was raised since: keep training

    # Per-rank bookkeeping is only valid if the world size did not change since the checkpoint.
    ranks_state = state["ranks"] if state["ranks"] and len(state["ranks"]) == world else None
    if state["ranks"] and ranks_state is None:
        log.warning("world size changed (%d -> %d): restarting the epoch", len(state["ranks"]), world)
    if rng_states is not None and len(rng_states) == world:
        _set_rng(rng_states[rank])
    skip = ranks_state[rank]["batches_done"] if ranks_state else 0
    dropped = Counter({int(k): v for k, v in ranks_state[rank]["dropped"].items()}) if ranks_state else Counter()

    collate = TorchCollate(tokenizer.pad_token_id, packed=tc.packing)
    train_shard = ray.train.get_dataset_shard("train")
    # This rank's slice of the validation sample (eval_max_examples rows in all), tokenized once.
    val_batches = validation_batches(tokenizer, plan["val_rows"][rank::world], tc.max_seq_len, tc.batch_size,
                                     PadCollate(tokenizer.pad_token_id), device, tc.loss_on)
    task_rows = plan.get("task_rows") or []
    trackers = Trackers(tc, train_dir, config_dict(cfg)["train"]) if rank == 0 else None

    def run_eval() -> dict | None:
        if not plan["val_rows"]:
            return None
        out = evaluate(raw, val_batches, device=device, autocast=amp())
        if task_rows and not fsdp:
            # Generation on the unwrapped module; under FSDP every rank would have to run the
            # same number of forwards in lockstep, which free-running generation does not.
            out["tasks"] = task_metrics(raw, tokenizer, task_rows[rank::world], device=device,
                                        max_new_tokens=tc.max_new_tokens, batch_size=tc.batch_size,
                                        autocast=amp(), max_prompt_len=tc.max_seq_len)
        return out

    if "base" not in state["eval"] and not state["done"]:
        state["eval"]["base"] = run_eval()
        if rank == 0 and state["eval"]["base"]:
            log.info("base model: %s", _eval_line(state["eval"]["base"]))

    def save_checkpoint(consumed: int) -> None:
        """Every rank gathers its position + RNG and its part of the state; rank 0 writes; all report."""
        mine = {"batches_done": consumed, "rng": _get_rng(), "dropped": dict(dropped)}
        everyone = [None] * world
        if world > 1:
            dist.all_gather_object(everyone, mine)
        else:
            everyone = [mine]
        model_sd = parallel.model_state(model, lora)  # collectives under FSDP: every rank calls them
        optim_sd = parallel.optim_state(model, optimizer, lora)
        metrics = {"step": state["step"], "epoch": state["epoch"], "done": state["done"]}
        losses = [r["loss"] for r in state["history"] if "loss" in r]
        if losses:
            metrics["loss"] = losses[-1]
        if rank != 0:
            ray.train.report(metrics)
            return
        state["ranks"] = [{k: v for k, v in r.items() if k != "rng"} for r in everyone]
        with tempfile.TemporaryDirectory(prefix="sft_ray_ckpt_") as tmp:
            torch.save(model_sd, os.path.join(tmp, "model.pt"))
            torch.save(optim_sd, os.path.join(tmp, "optimizer.pt"))
            torch.save(scheduler.state_dict(), os.path.join(tmp, "scheduler.pt"))
            torch.save([r["rng"] for r in everyone], os.path.join(tmp, "rng.pt"))
            with open(os.path.join(tmp, "state.json"), "w") as f:
                json.dump({**state, "config": config_dict(cfg)}, f, indent=1, default=str)
            ray.train.report(metrics, checkpoint=ray.train.Checkpoint.from_directory(tmp),
                             checkpoint_dir_name=f"step_{state['step']:06d}")
        log.info("checkpoint at step %d", state["step"])

    def new_window() -> dict:
        return {"loss": torch.zeros((), device=device), "sup": 0.0, "tokens": 0, "slots": 0, "steps": 0,
                "time": 0.0, "data_time": 0.0}

    # ---------------------------------------------------------------------------------- training
    model.train()
    win = new_window()
    consumed = skip  # raw batches of the current epoch this rank has taken (the resume position)

    def finished() -> bool:
        if tc.max_steps is not None:
            return state["step"] >= tc.max_steps
        return state["epoch"] >= tc.epochs

    while not finished() and not state["done"]:
        batches = iter(train_shard.iter_torch_batches(
            batch_size=tc.batch_size, collate_fn=collate, device=device,
            local_shuffle_buffer_size=tc.shuffle_buffer or None, local_shuffle_seed=tc.seed + state["epoch"]))
        consumed, resumed_mid_epoch = 0, skip > 0
        for _ in range(skip):  # resume mid-epoch: fast-forward past batches already trained on
            if next(batches, None) is None:
                break
            consumed += 1
        skip = 0
        steps_this_epoch = 0
        while tc.max_steps is None or state["step"] < tc.max_steps:
            t0 = time.perf_counter()
            # 1. Fetch one optimizer step's worth of micro-batches (skipping rows tokenize dropped).
            micro, kept = [], 0
            while len(micro) < tc.grad_accum:
                b = next(batches, None)
                if b is None:
                    break
                consumed += 1
                if state["epoch"] == 0:
                    dropped.update(int(c) for c in b["drop_codes"].tolist())
                kept += int(b["num_examples"])
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
            if state["epoch"] == 0:
                dropped[0] += kept  # code 0 = trained on (a partial last step of an epoch is not)
            # 3. Forward/backward; gradients are reduced across ranks only on the last micro-batch.
            for i, b in enumerate(micro):
                with parallel.no_sync(model, skip=i < len(micro) - 1):
                    loss_sum, _ = token_loss_sum(model, b, amp())
                    (loss_sum * world / n_sup_global).backward()
                win["loss"] += loss_sum.detach()
                win["tokens"] += int(b["num_tokens"])
                win["slots"] += b["input_ids"].numel()
            grad_norm = parallel.grad_norm(model, tc.max_grad_norm)
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
            last = tc.max_steps is not None and step == tc.max_steps
            # 4. Log (step 1 too, so the run shows its starting loss) and checkpoint.
            if step == 1 or step % tc.log_every == 0 or last:
                loss_total, tokens_total, slots_total = all_reduce_sum(
                    [win["loss"].item(), win["tokens"], win["slots"]], device)
                row = {"step": step, "epoch": state["epoch"], "loss": loss_total / win["sup"], "lr": lr,
                       "grad_norm": grad_norm, "tokens_per_s": tokens_total / win["time"],
                       "token_util": tokens_total / max(1.0, slots_total),
                       "step_time": win["time"] / win["steps"], "data_time": win["data_time"] / win["steps"]}
                state["history"].append(row)
                win = new_window()
                if rank == 0:
                    log.info("step %d/%s  loss %.4f  lr %.2e  grad_norm %.3f  tok/s %.0f  util %.2f  step %.2fs "
                             "(data %.2fs)", step, tc.max_steps or f"~{total}", row["loss"], lr, row["grad_norm"],
                             row["tokens_per_s"], row["token_util"], row["step_time"], row["data_time"])
                    _write_metrics(train_dir, state["history"], cfg.storage_options)
                    trackers.log(row)
            if step % tc.checkpoint_every == 0 and not last:
                save_checkpoint(consumed)
        if steps_this_epoch == 0 and not finished() and not resumed_mid_epoch:
            raise RuntimeError(f"epoch {state['epoch']} yielded no training step: sft/train has fewer usable "
                               f"examples than num_workers x batch_size x grad_accum")
        if tc.max_steps is None or state["step"] < tc.max_steps:
            state["epoch"] += 1
            consumed = 0

    # --------------------------------------------------------------------- evaluate, save, export
    if not state["done"]:
        state["eval"]["finetuned"] = run_eval()
        counts = all_reduce_sum([dropped[c] for c in range(len(DROP_REASONS))], device)
        state["train_examples_read"] = int(counts[0])
        state["train_dropped"] = {DROP_REASONS[c]: int(v) for c, v in enumerate(counts) if c and v}
        if plan.get("n_train") is not None and state["epoch"] >= 1:
            # Examples of a full first epoch neither trained on nor dropped by tokenization: the
            # rows streaming_split(equal=True) holds back so every worker gets as many, and the
            # micro-batches of a last step some worker could not fill. Recorded, never silent.
            state["train_left_over"] = plan["n_train"] - int(sum(counts))
        state["done"] = True
        save_checkpoint(consumed)
    export = parallel.export_module(model, raw, tc, model_path, rank)  # every rank: gathers under FSDP
    if rank == 0:
        _write_metrics(train_dir, state["history"], cfg.storage_options)
        ev = state["eval"]
        if ev.get("base"):
            write_json(join(train_dir, "eval.json"), _eval_json(ev), cfg.storage_options)
            log.info("eval: base %s | fine-tuned %s", _eval_line(ev["base"]), _eval_line(ev["finetuned"]))
        write_json(join(train_dir, "train_state.json"), {
            "steps": state["step"], "epochs_completed": state["epoch"],
            "planned_steps": total, "train_examples_read": state.get("train_examples_read"),
            "train_examples_in_manifest": plan.get("n_train"), "train_left_over_epoch_0": state.get("train_left_over"),
            "train_dropped": state.get("train_dropped", {}),
        }, cfg.storage_options)
        export_model(export, tokenizer, join(train_dir, "model"), cfg.storage_options)
        log.info("model exported to %s", join(train_dir, "model"))
        trackers.close()


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
