"""The driver side of a fine-tune: plan the run, build the tokenized stream, start the Ray Train workers.

`run_finetune(cfg)` reads `<output>/sft/train` with Ray Data, tokenizes in a Ray Data actor pool
(tokenizer loaded once per actor), plans the number of steps from the build's manifest (no pass
over the data to count rows) and hands the dataset to a `TorchTrainer` running
`loop.train_loop_per_worker` on `train.num_workers` workers, which stream their shards. Everything
else a worker needs is decided here once and handed over as one `TrainPlan`, so every rank trains
to the same schedule and evaluates the same sample. Checkpoints go to `<output>/train/checkpoints`
(local or any fsspec URL) and a rerun on the same output resumes from the latest one (Ray Train
restores its checkpoint manager from storage; checkpoint.py says what a resume restores).

Layout written (docs/ARCHITECTURE.md, "Output layout"):
    <output>/train/checkpoints/   Ray Train storage, step_000050/ ... (resume from here)
    <output>/train/model/         final model + tokenizer (chat template), from_pretrained-ready
    <output>/train/metrics.jsonl  step, epoch, loss, lr, grad_norm, tokens_per_s, step_time
    <output>/train/eval.json      validation loss/perplexity, base vs fine-tuned
    <output>/train/train_state.json  steps done, examples read, examples dropped by reason
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass

from sft_ray.config import ConfigError, RunConfig
from sft_ray.console import duration
from sft_ray.placement import data_selector
from sft_ray.preflight import PreflightError, check_training_resources
from sft_ray.storage import abs_output, check_writable, exists, get_fs, join, pyarrow_fs, read_json, read_text

log = logging.getLogger("sft_ray")


@dataclass(frozen=True)
class TrainPlan:
    """What the driver decided before training; every worker receives the same one (pickled in the
    loop config), so the ranks cannot disagree on the schedule or the evaluation sample."""

    output: str
    """Absolute output root (local path or fsspec URL); the workers write under `<output>/train`."""
    model_path: str
    """Where the driver resolved the base model; a worker on another node resolves it again."""
    total_steps: int
    """Optimizer steps the LR schedule is sized for (`max_steps`, or `epochs` x `steps_per_epoch`)."""
    warmup_steps: int
    """Linear-warmup steps at the start of the schedule (`warmup_ratio` x `total_steps`)."""
    steps_per_epoch: int | None
    """Estimated optimizer steps per epoch; None without a manifest count (then `max_steps` is set)."""
    n_train: int | None
    """Train examples in the build manifest; None without one. Sizes the left-over count."""
    val_rows: tuple[dict, ...] = ()
    """Head of the validation split (`eval_max_examples` rows) for validation loss; small and
    bounded, so it travels here instead of as a second streaming dataset."""
    task_rows: tuple[dict, ...] = ()
    """Validation rows for task metrics, round-robin over tasks (`task_sample`)."""

    @property
    def train_dir(self) -> str:
        return join(self.output, "train")


def plan_steps(cfg: RunConfig, n_train: int | None, rows_per_example: float = 1.0) -> dict:
    """Steps per epoch and in total, from the number of train examples in the manifest.

    Ray Train splits the dataset into `num_workers` equal shards (streaming_split(equal=True)), each
    worker forms ceil(rows / batch_size) micro-batches and an optimizer step takes `grad_accum` of
    them. With packing a row holds several examples: `rows_per_example` (< 1) comes from packing a
    tokenized sample (`sample_stats`), so the count is an estimate that sizes the LR schedule; the
    loop still trains exactly `epochs` passes. `max_steps`, when set, wins (epochs repeat as needed).
    """
    tc = cfg.train
    steps_per_epoch = None
    if n_train is not None:
        rows_per_worker = math.ceil(n_train * rows_per_example) // tc.num_workers
        steps_per_epoch = math.ceil(rows_per_worker / tc.batch_size) // tc.grad_accum
    if tc.max_steps is not None:
        total = tc.max_steps
    elif steps_per_epoch is None:
        raise ConfigError("train.max_steps is required when <output>/manifest.json (sft.train count) is missing")
    elif steps_per_epoch == 0:
        raise ConfigError(f"sft/train has {n_train} examples ({'packed into ~' + str(math.ceil(n_train * rows_per_example)) + ' rows' if rows_per_example < 1 else 'one per row'}): "
                          f"fewer rows than train.num_workers x train.batch_size x train.grad_accum = "
                          f"{tc.num_workers * tc.batch_size * tc.grad_accum}; lower them")
    else:
        total = tc.epochs * steps_per_epoch
    return {"steps_per_epoch": steps_per_epoch, "total_steps": total,
            "warmup_steps": int(round(tc.warmup_ratio * total))}


def sample_stats(tokenizer, rows: list[dict], tc) -> tuple[float, float | None]:
    """(packed rows per example, mean tokens per example) of a sample of training examples,
    tokenized and packed exactly as the Ray Data stages will (same tokenizer, truncation and
    best-fit decreasing). Rows per example is 1.0 without packing."""
    from sft_ray.train.pack import best_fit_decreasing
    from sft_ray.train.tokenize import tokenize_example

    lengths = [len(t["input_ids"]) for t in (tokenize_example(tokenizer, r["messages"], tc.max_seq_len, tc.loss_on, tc.too_long)
                                              for r in rows) if not t["drop_reason"]]
    if not lengths:
        return 1.0, None
    ratio = len(best_fit_decreasing(lengths, tc.max_seq_len)) / len(lengths) if tc.packing else 1.0
    return ratio, sum(lengths) / len(lengths)


def task_sample(tasks: list[str | None], n: int) -> list[int]:
    """Indices of up to n rows for task metrics, round-robin over tasks (in order of first
    appearance within each task), so a small sample covers every task."""
    by_task: dict[str, list[int]] = {}
    for i, t in enumerate(tasks):
        q = by_task.setdefault(t or "", [])
        if len(q) < n:
            q.append(i)
    out, queues = [], [v for _, v in sorted(by_task.items())]
    while len(out) < n and any(queues):
        for q in queues:
            if q and len(out) < n:
                out.append(q.pop(0))
    return sorted(out)


def check_training_set(n_train: int | None, tc, train_url: str) -> None:
    """A training set too small for one optimizer step is one clear error with the numbers, before
    any worker starts (not a worker's error a minute into Ray Train)."""
    if n_train is None:  # no manifest (data written by another tool): the training loop still checks
        return
    need = tc.num_workers * tc.batch_size * tc.grad_accum
    if n_train == 0:
        raise PreflightError(f"{train_url} has 0 examples (manifest.json): nothing to fine-tune. The build's "
                             "report (report/report.html, rejects/) shows why its records were rejected")
    if n_train < need:
        raise PreflightError(f"{train_url} has {n_train} examples, fewer than one optimizer step takes: "
                             f"train.num_workers {tc.num_workers} x batch_size {tc.batch_size} x grad_accum {tc.grad_accum} = {need}; "
                             "lower those or build more data")


def _manifest_counts(output: str, storage_options: dict) -> dict:
    url = join(output, "manifest.json")
    if not exists(url, storage_options):
        return {}
    sft = (read_json(url, storage_options) or {}).get("sft") or {}
    return sft if isinstance(sft, dict) else {}


def _has_parquet(url: str, storage_options: dict) -> bool:
    fs, path = get_fs(url, storage_options)
    return fs.isdir(path) and any(p.endswith(".parquet") for p in fs.find(path))


def _parquet(url: str, storage_options: dict):
    # Small bounded samples are read with pyarrow directly: a Ray Data job on the driver costs
    # ~20 s of task startup for a few hundred rows.
    import pyarrow.dataset as pads

    fs, path = pyarrow_fs(url, storage_options)
    return pads.dataset(path, filesystem=fs, format="parquet")


def _train_sample_stats(cfg: RunConfig, train_url: str, model_path: str) -> tuple[float, float | None]:
    """sample_stats of the head of sft/train, after telling the user what max_seq_len does to it:
    the share of examples dropped or truncated, and a clear error when none is left to train on."""
    from sft_ray.models import load_tokenizer
    from sft_ray.train.tokenize import tokenize_example

    tc = cfg.train
    sample = _parquet(train_url, cfg.storage_options).head(min(tc.pack_window, 1024), columns=["messages"]).to_pylist()
    tokenizer = load_tokenizer(model_path, tc.trust_remote_code)
    if sample:
        toks = [tokenize_example(tokenizer, r["messages"], tc.max_seq_len, tc.loss_on, tc.too_long) for r in sample]
        reasons: dict[str, int] = {}
        for t in toks:
            if t["drop_reason"]:
                reasons[t["drop_reason"]] = reasons.get(t["drop_reason"], 0) + 1
        cut = sum(t["truncated"] for t in toks)
        if len(reasons) and sum(reasons.values()) == len(toks):
            raise PreflightError(f"{train_url}: none of a sample of {len(toks)} training examples can be trained on "
                                 f"({reasons}); with train.max_seq_len={tc.max_seq_len}, raise max_seq_len or set train.too_long=truncate")
        if reasons:
            log.warning("of a sample of %d training examples, %d will be skipped: %s", len(toks), sum(reasons.values()), reasons)
        if cut:
            log.warning("of a sample of %d training examples, %d (%.0f%%) exceed train.max_seq_len=%d and are truncated from the left",
                        len(toks), cut, 100 * cut / len(toks), tc.max_seq_len)
    return sample_stats(tokenizer, sample, tc)


def _validation_sample(cfg: RunConfig, val_url: str) -> tuple[tuple[dict, ...], tuple[dict, ...]]:
    """(rows for validation loss, rows for task metrics)."""
    tc, cols = cfg.train, ["id", "task", "messages"]
    val = _parquet(val_url, cfg.storage_options)
    val_rows = val.head(tc.eval_max_examples, columns=cols).to_pylist()
    # Task rows: round-robin over tasks across the whole split (files are grouped by source, so the
    # head alone may hold one task). Only the small `task` column is read in full.
    picks = task_sample(val.to_table(columns=["task"]).column("task").to_pylist(), tc.task_eval_max_examples)
    task_rows = val.take(picks, columns=cols).to_pylist() if picks else []
    return tuple(val_rows), tuple(task_rows)


def _train_dataset(cfg: RunConfig, train_url: str, model_path: str, n_train: int | None, mean_tokens: float | None):
    import ray.data

    from sft_ray.train.tokenize import tokenize_dataset

    tc = cfg.train
    fs, path = pyarrow_fs(train_url, cfg.storage_options)
    with data_selector(cfg.placement.train, cfg.placement.strict_shuffle):  # tokenizer actors feed the workers from their nodes
        ds = ray.data.read_parquet(path, filesystem=fs)
        # A fixed row order makes resume's fast-forward land on the same examples.
        ds.context.execution_options.preserve_order = True
        ds = tokenize_dataset(ds, model_path, tc.max_seq_len, trust_remote_code=tc.trust_remote_code,
                              loss_on=tc.loss_on, too_long=tc.too_long, packing=tc.packing, pack_window=tc.pack_window,
                              max_actors=tc.tokenize_actors, num_cpus=tc.tokenize_cpus)
    # Every epoch re-executes the stream (tokenizer actors included, ~35 s on a small machine); a
    # small tokenized set is computed once and kept in the object store instead. ids + labels
    # (+ position ids) are int32: 12 bytes per token.
    est_mb = n_train * mean_tokens * 12 / 2**20 if n_train and mean_tokens else None
    if est_mb is not None and est_mb <= tc.materialize_max_mb:
        log.info("tokenized train set ~%.1f MB <= train.materialize_max_mb: tokenizing once for all epochs", est_mb)
        ds = ds.materialize()
    return ds


def _trainer(cfg: RunConfig, plan: TrainPlan, train_ds):
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, LoggingConfig, ScalingConfig
    from ray.train import RunConfig as RayRunConfig
    from ray.train.torch import TorchTrainer

    from sft_ray.train.loop import train_loop_per_worker

    tc = cfg.train
    storage_fs, storage_path = pyarrow_fs(plan.train_dir, cfg.storage_options)
    return TorchTrainer(
        train_loop_per_worker,
        train_loop_config={"run": cfg.model_dump(mode="json"), "plan": plan},
        scaling_config=ScalingConfig(num_workers=tc.num_workers, use_gpu=tc.use_gpu,
                                     resources_per_worker={"CPU": tc.cpus_per_worker, **tc.resources_per_worker},
                                     label_selector=dict(cfg.placement.train) or None),
        run_config=RayRunConfig(
            name="checkpoints",
            storage_path=storage_path,
            storage_filesystem=storage_fs,
            checkpoint_config=CheckpointConfig(num_to_keep=tc.num_to_keep),
            failure_config=FailureConfig(max_failures=tc.max_failures),
            # Ray Train's own console lines (worker group starts, "Reporting training result", DDP
            # wrapping): warnings only; its log files keep everything (console.py).
            logging_config=LoggingConfig(log_level="WARNING"),
        ),
        datasets={"train": train_ds},
        # Ray Train replaces a dataset's execution options with the driver's defaults, which would
        # drop preserve_order (resume's fast-forward) and the placement selector: hand them over.
        dataset_config=DataConfig(execution_options=train_ds.context.execution_options),
    )


def _summary(plan: TrainPlan, storage_options: dict, t0: float) -> dict:
    """The run summary, from what rank 0 wrote (the workers' return values do not reach the driver)."""
    train_dir = plan.train_dir
    rows = [json.loads(line) for line in read_text(join(train_dir, "metrics.jsonl"), storage_options).splitlines() if line.strip()]
    rows = [r for r in rows if "loss" in r]  # event rows (resume markers) carry no loss
    ev = read_json(join(train_dir, "eval.json"), storage_options) if exists(join(train_dir, "eval.json"), storage_options) else {}
    st = read_json(join(train_dir, "train_state.json"), storage_options)
    base, tuned = ev.get("base") or {}, ev.get("finetuned") or {}
    return {
        "loss_start": rows[0]["loss"] if rows else None,
        "loss_end": rows[-1]["loss"] if rows else None,
        "val_loss_before": base.get("loss"),
        "val_loss_after": tuned.get("loss"),
        "tasks_before": base.get("tasks"),
        "tasks_after": tuned.get("tasks"),
        "steps": st["steps"],
        "train_examples": plan.n_train if plan.n_train is not None else st.get("train_examples_read"),
        "train_dropped": st.get("train_dropped", {}),
        "train_left_over_epoch_0": st.get("train_left_over_epoch_0"),
        "model_dir": join(train_dir, "model"),
        # LoRA runs: the adapter alone beside the merged model (loop.py).
        "adapter_dir": join(train_dir, "adapter") if exists(join(train_dir, "adapter", "adapter_config.json"), storage_options) else None,
        "checkpoint_dir": join(train_dir, "checkpoints"),
        "wall_s": round(time.time() - t0, 1),
    }


def run_finetune(cfg: RunConfig) -> dict:
    """Fine-tune `cfg.train.model` on `<output>/sft/train`; returns a summary dict:
    loss_start, loss_end, val_loss_before, val_loss_after, steps, train_examples, train_dropped,
    model_dir, adapter_dir (LoRA runs; else None), checkpoint_dir, wall_s."""
    import ray

    from sft_ray.models import resolve_model
    from sft_ray.runtime import init_ray

    t0 = time.time()
    tc, storage_options = cfg.train, cfg.storage_options
    output = abs_output(cfg.output)
    train_url, val_url = join(output, "sft", "train"), join(output, "sft", "validation")
    if not _has_parquet(train_url, storage_options):
        raise FileNotFoundError(f"no SFT training data: {train_url} holds no .parquet files (run the build first)")
    n_train = _manifest_counts(output, storage_options).get("train")
    check_training_set(n_train, tc, train_url)  # before Ray Train (or Ray) starts
    has_val = _has_parquet(val_url, storage_options)
    if not has_val:
        log.warning("no validation data at %s: eval.json will not be written", val_url)

    if not ray.is_initialized():
        init_ray(cfg.ray_address)
    check_training_resources(tc)  # before any model load, tokenization or GPU work
    check_writable(join(output, "train"), storage_options)
    model_path = resolve_model(tc.model, tc.trust_remote_code, tiny=tc.tiny, seed=tc.seed, storage_options=storage_options)
    ratio, mean_tokens = _train_sample_stats(cfg, train_url, model_path) if n_train else (1.0, None)
    steps = plan_steps(cfg, n_train, ratio)
    log.info("fine-tuning %s (%s) on %s: %s examples, %s steps (%s per epoch%s), %d workers, %s",
             tc.model, model_path, train_url, n_train if n_train is not None else "?", steps["total_steps"],
             steps["steps_per_epoch"] or "?", f", ~{ratio:.3f} packed rows per example" if ratio < 1 else "",
             tc.num_workers, tc.strategy + (" + LoRA" if tc.lora.enabled else ""))

    train_ds = _train_dataset(cfg, train_url, model_path, n_train, mean_tokens)
    val_rows, task_rows = _validation_sample(cfg, val_url) if has_val else ((), ())
    plan = TrainPlan(output=output, model_path=model_path, n_train=n_train, val_rows=val_rows,
                     task_rows=task_rows, **steps)
    result = _trainer(cfg, plan, train_ds).fit()
    if result.error:
        raise result.error
    summary = _summary(plan, storage_options, t0)
    log.info("fine-tuning done in %s", duration(summary["wall_s"]) if summary.get("wall_s") is not None else "?")
    return summary
