"""CPU training throughput of sft_ray's fine-tuning: Ray overhead, packing, scaling 1 -> 2 workers.

    .venv/bin/python benchmarks/train_throughput.py                  # the measurement (2 cores: ~10 min)
    .venv/bin/python benchmarks/train_throughput.py --quick          # smoke run (tiny model, 4 steps: ~4 min)
    .venv/bin/python benchmarks/train_throughput.py --json out.json  # also write the results as JSON

Prepare: `--examples` real SFT examples, a seeded sample of the demo build's `runs/demo/sft/train`
(mixed tasks: AG News classification and headlines, Multi30k en<->de translation; when that folder
is missing, the same examples are made from `sft_ray/demo/data` with the build's format templates),
are written in the build's layout (`<out>/sft/{train,validation}/*.parquet` + `manifest.json`)
once per Ray run, and tokenized once on the driver (`tokenize.tokenize_example`) for the plain
loop and the whole-set packing numbers. The model is a random mid-size Llama with the SmolLM2
tokenizer (`train.model: tiny-llama` with `train.tiny` overrides: hidden 256, 4 layers, ~16M
parameters, most of them the 49k-token embedding / LM head): the default 2-layer tiny-llama is so
small that data handling, not the model, would set the pace. Ray is started once for all Ray runs.

What runs (same model file, `--batch-size` rows of `--max-seq-len` tokens per step):
  plain      one process, no Ray: the loop's recipe by hand. Examples tokenized with
             tokenize_example, packed with pack_examples (windows of pack_window, as the Ray Data
             stage), rows shuffled, batches from collate_packed, loss from token_loss_sum divided by
             the supervised tokens, AdamW (betas 0.9/0.95), the loop's LR schedule, gradient
             clipping; torch threads = cpus_per_worker. Run twice, before and after the Ray
             1-worker run, to show how much the shared machine moved in between; the mean is used.
  ray 1w     run_finetune with num_workers 1: Ray Data read -> tokenize actor -> pack -> streaming
             split -> iter_torch_batches -> the real training loop (loop.py).
  ray 1w unpacked   the same with train.packing false and a batch size of as many examples as the
             packed batch holds on average, so both modes see about the same real tokens per step.
  ray 2w     num_workers 2, cpus_per_worker 1 (DDP over gloo), each worker --batch-size rows.

Tokens/s are real (non-padding) tokens per second of optimizer steps in steady state: the first
`--warmup` steps are left out on both sides (Ray: the metrics.jsonl windows up to that step, i.e.
the first logged window(s): pipeline start-up and the first allocations; plain: the same steps).
The Ray loop times a step from fetching its batch to the end of the optimizer step, so its number
includes waiting for data but not logging or checkpointing; the plain loop is timed the same way.
Token utilisation (real tokens / row slots) comes from the Ray runs' metrics and, for the whole
example set, from collate_packed / collate_padded directly.

This machine has 2 cores, shared with Ray's own processes (raylet, GCS, dashboard, the data
pipeline): two 1-CPU workers can at best double one worker's tokens/s, and CPU seconds that Ray's
other processes used during each run are reported next to it. Each run_finetune also has a fixed
start-up cost that tokens/s leave out by design (~60 s wall and ~90-130 CPU-s of Ray processes here:
worker and actor processes importing torch/transformers, Ray Data's footer readers, the tokenizer
actor, the train controller); the table shows each run's wall time next to its time in steps.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tools.rss import TreeSampler
from tools.train_metrics import steady_metrics, warmup_boundary

DEMO_SFT = ROOT / "runs" / "demo" / "sft"
DEMO_DATA = ROOT / "sft_ray" / "demo" / "data"
# Mid-size random Llama (the SmolLM2 vocabulary and tokenizer): big enough that the model, not the
# data handling, sets the pace on a CPU.
MID_TINY = {"hidden_size": 256, "intermediate_size": 768, "num_hidden_layers": 4, "num_attention_heads": 4,
            "num_key_value_heads": 2}
QUICK_TINY = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2}
TARGET_OVERHEAD, TARGET_UTIL = 0.10, 0.95


# ------------------------------------------------------------------------------------- examples
def demo_examples(seed: int = 0) -> list[dict]:
    """SFT examples made from sft_ray/demo/data with the build's format templates (no clean/dedup):
    the fallback when runs/demo/sft is not there."""
    import csv
    import gzip

    from sft_ray import schema
    from sft_ray.format.templates import examples_for

    names = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
    options = sorted(names.values())
    rows = []
    with open(DEMO_DATA / "ag_news_test_part.csv", newline="", encoding="utf-8") as f:
        for i, (label, title, text) in enumerate(csv.reader(f)):
            rec = {schema.ID: f"agnews-{i}", schema.LABEL: names.get(label), schema.TITLE: title, schema.TEXT: " ".join(text.split())}
            for ex_id, task, messages in examples_for(rec, ["classification", "headline"], options, False, None, seed):
                rows.append({"id": ex_id, "task": task, "messages": messages, "source": "agnews", "source_id": rec[schema.ID]})
    with gzip.open(DEMO_DATA / "multi30k_train_3k.en.gz", "rt", encoding="utf-8") as en, \
            gzip.open(DEMO_DATA / "multi30k_train_3k.de.gz", "rt", encoding="utf-8") as de:
        for i, (a, b) in enumerate(zip(en, de)):
            rec = {schema.ID: f"m30k-{i}", schema.SRC_TEXT: a.strip(), schema.TGT_TEXT: b.strip(), schema.SRC_LANG: "en", schema.TGT_LANG: "de"}
            for ex_id, task, messages in examples_for(rec, ["translation"], [], True, None, seed):
                rows.append({"id": ex_id, "task": task, "messages": messages, "source": "m30k-en-de",
                             "source_id": rec[schema.ID]})
    return rows


def load_examples(sft: Path, n_train: int, n_val: int, seed: int) -> tuple[list[dict], list[dict], str]:
    """(train rows, validation rows, where from): a seeded sample of `sft`/train (mixed tasks) and
    the first `n_val` rows of `sft`/validation."""
    import pyarrow.dataset as pads

    cols = ["id", "task", "messages", "source", "source_id"]
    train_dir, val_dir = sft / "train", sft / "validation"
    if any(train_dir.glob("*.parquet")):
        table = pads.dataset(str(train_dir), format="parquet").to_table(columns=cols)
        origin = str(train_dir)
        if n_train > table.num_rows:
            raise SystemExit(f"--examples {n_train}: {train_dir} holds only {table.num_rows}")
        train = table.take(sorted(random.Random(seed).sample(range(table.num_rows), n_train))).to_pylist()
        random.Random(seed).shuffle(train)  # files are grouped by source: mix the tasks
        val = (pads.dataset(str(val_dir), format="parquet").head(n_val, columns=cols).to_pylist()
               if any(val_dir.glob("*.parquet")) else [])
    else:
        pool, origin = demo_examples(seed), f"{DEMO_DATA} (format templates; {train_dir} missing)"
        random.Random(seed).shuffle(pool)
        train, val = pool[n_val:n_val + n_train], pool[:n_val]
    return train, val, origin


def write_sft_set(out: Path, train: list[dict], val: list[dict], files: int = 4) -> Path:
    """<out>/sft/{train,validation}/part-*.parquet + manifest.json, as the build writes them."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from sft_ray.schema import SFT_OUTPUT_SCHEMA

    for split, rows, k in (("train", train, files), ("validation", val, 1)):
        d = out / "sft" / split
        d.mkdir(parents=True, exist_ok=True)
        per = -(-len(rows) // k)
        for f in range(k):
            chunk = rows[f * per:(f + 1) * per]
            if chunk:
                pq.write_table(pa.Table.from_pylist(chunk, schema=SFT_OUTPUT_SCHEMA), d / f"part-{f:05d}.parquet")
    (out / "manifest.json").write_text(json.dumps({"sft": {"train": len(train), "validation": len(val)}}))
    return out


def tokenize_all(tokenizer, rows: list[dict], max_seq_len: int) -> tuple[list, list]:
    from sft_ray.train.tokenize import tokenize_example

    ids, labels = [], []
    for r in rows:
        t = tokenize_example(tokenizer, r["messages"], max_seq_len)
        if not t["drop_reason"]:
            ids.append(np.asarray(t["input_ids"], dtype=np.int32))
            labels.append(np.asarray(t["labels"], dtype=np.int32))
    return ids, labels


def pack_windows(ids: list, labels: list, max_seq_len: int, pack_window: int) -> list[dict]:
    """pack_examples over consecutive windows of `pack_window` examples, as the Ray Data stage does."""
    from sft_ray.train.pack import pack_examples

    rows = []
    for i in range(0, len(ids), pack_window):
        rows += pack_examples(ids[i:i + pack_window], labels[i:i + pack_window], max_seq_len)
    return rows


def packed_batch(chunk: list[dict]) -> dict:
    return {k: [r[k] for r in chunk] for k in ("input_ids", "labels", "position_ids", "n_examples")} | {
        "drop_code": [0] * len(chunk)}


def whole_set_util(ids, labels, rows, batch_size: int, unpacked_batch: int, pad_id: int, seed: int) -> dict:
    """Real tokens / slots over the whole example set, from the collate functions themselves: packed
    rows in shuffled batches of `batch_size`, and single examples in shuffled batches of `unpacked_batch`."""
    from sft_ray.train.pack import collate_packed, collate_padded

    rng = np.random.default_rng(seed)
    out = {}
    order = rng.permutation(len(rows))
    real = slots = 0
    for i in range(0, len(order), batch_size):
        b = collate_packed(packed_batch([rows[j] for j in order[i:i + batch_size]]), pad_id)
        real, slots = real + int(b["num_tokens"]), slots + b["input_ids"].size
    out["packed"] = real / slots
    order = rng.permutation(len(ids))
    real = slots = 0
    for i in range(0, len(order), unpacked_batch):
        sel = order[i:i + unpacked_batch]
        b = collate_padded({"input_ids": [ids[j] for j in sel], "labels": [labels[j] for j in sel],
                            "drop_code": [0] * len(sel)}, pad_id)
        real, slots = real + int(b["num_tokens"]), slots + b["input_ids"].size
    out["unpacked"] = real / slots
    return out


# ------------------------------------------------------------------------------------ the runs
def plain_loop(model_path: str, rows: list[dict], cfg, skip: int, pad_id: int) -> dict:
    """The training loop's recipe in one process without Ray, on pre-packed rows."""
    import torch

    from sft_ray.models import load_model
    from sft_ray.train.loop import lr_factor
    from sft_ray.train.loss import token_loss_sum
    from sft_ray.train.pack import collate_packed

    tc = cfg.train
    threads = torch.get_num_threads()
    torch.set_num_threads(max(1, int(tc.cpus_per_worker)))
    try:
        random.seed(tc.seed)
        np.random.seed(tc.seed)
        torch.manual_seed(tc.seed)
        model = load_model(model_path)
        model.config.use_cache = False
        model.train()
        optimizer = torch.optim.AdamW(model.parameters(), lr=tc.lr, weight_decay=tc.weight_decay, betas=(0.9, 0.95))
        total, warmup = tc.max_steps, int(round(tc.warmup_ratio * tc.max_steps))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, warmup, total))
        order = np.random.default_rng(tc.seed).permutation(len(rows))
        nullctx = torch.autocast("cpu", enabled=False)
        tokens = slots = 0
        t_steady = cpu_steady = 0.0
        losses = []
        for step in range(1, total + 1):
            t0, c0 = time.perf_counter(), time.process_time()
            start = ((step - 1) * tc.batch_size) % len(order)
            chunk = [rows[j] for j in order[start:start + tc.batch_size]]
            b = {k: torch.from_numpy(np.asarray(v)) for k, v in collate_packed(packed_batch(chunk), pad_id).items()}
            loss_sum, n_sup = token_loss_sum(model, b, nullctx)
            (loss_sum / n_sup).backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), tc.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            dt = time.perf_counter() - t0
            losses.append(loss_sum.item() / int(n_sup))
            if step > skip:
                tokens, slots = tokens + int(b["num_tokens"]), slots + b["input_ids"].numel()
                t_steady, cpu_steady = t_steady + dt, cpu_steady + time.process_time() - c0
        del model, optimizer
        gc.collect()
    finally:
        torch.set_num_threads(threads)
    return {"tokens_per_s": tokens / t_steady, "token_util": tokens / slots, "step_time": t_steady / (total - skip),
            "steady_steps": total - skip, "cpu_per_wall": cpu_steady / t_steady, "loss_first": losses[0],
            "loss_last": losses[-1]}


def _process_kind(rec: dict) -> str:
    """A short name for a sampled process: its first Ray task/actor name, else what it runs."""
    tasks = [t for t in rec.get("by_task", {}) if t.startswith("ray::") and "IDLE" not in t]
    if tasks:
        return tasks[0].split("(")[0].split(".")[0]
    cmd = rec.get("cmd", "")
    for key in ("raylet", "gcs_server", "dashboard/agent", "dashboard", "runtime_env", "log_monitor", "monitor.py",
                "default_worker"):
        if key in cmd:
            return key
    return rec.get("name", "?")


def _cpu_by_role(sampler: TreeSampler, baseline: dict[int, float], driver: int) -> dict:
    """CPU seconds used during a run by the training worker(s) and by every other Ray process
    (raylet, GCS, dashboard and agents, the data pipeline's tasks and actors, the train controller),
    plus the biggest users by kind."""
    out, kinds = {"train_workers": 0.0, "ray_other": 0.0}, {}
    for pid, rec in sampler.peak.items():
        if pid == driver or "cpu_s" not in rec:
            continue
        used = rec["cpu_s"] - baseline.get(pid, 0.0)
        kind = _process_kind(rec)
        out["train_workers" if "TrainWorker" in kind else "ray_other"] += used
        kinds[kind] = kinds.get(kind, 0.0) + used
    top = sorted(kinds.items(), key=lambda kv: -kv[1])[:8]
    return {**{k: round(v, 1) for k, v in out.items()}, "by_kind": {k: round(v, 1) for k, v in top}}


def _cpu_snapshot(pid: int) -> dict[int, float]:
    import psutil

    snap = {}
    try:
        procs = [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return snap
    for p in procs:
        try:
            t = p.cpu_times()
            snap[p.pid] = t.user + t.system
        except psutil.Error:
            pass
    return snap


def ray_run(work: Path, name: str, train: list[dict], val: list[dict], train_cfg: dict, skip: int) -> dict:
    """run_finetune on a fresh output (a rerun on an old one would resume) holding the SFT set."""
    from sft_ray.config import RunConfig
    from sft_ray.train import run_finetune

    out = write_sft_set(work / name, train, val)
    cfg = RunConfig.model_validate({"output": str(out), "train": train_cfg})
    driver = os.getpid()
    baseline = _cpu_snapshot(driver)
    t0 = time.perf_counter()
    with TreeSampler(driver, every=1.0) as sampler:
        summary = run_finetune(cfg)
    wall = time.perf_counter() - t0
    lines = (out / "train" / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines if line.strip()]
    res = steady_metrics(metrics, skip)
    prev, steps_s = 0, 0.0
    for m in metrics:
        if "loss" in m:
            steps_s, prev = steps_s + m["step_time"] * (m["step"] - prev), m["step"]
    res.update({"steps": summary["steps"], "wall_s": round(wall, 1), "steps_s": round(steps_s, 1),
                "cpu_s": _cpu_by_role(sampler, baseline, driver),
                "metrics": metrics})
    return res


# ------------------------------------------------------------------------------------- report
def result_rows(r: dict, a) -> list[dict]:
    """The table: one dict per line (section, measure, value, unit, note)."""
    p1, p2 = r["plain_1"], r["plain_2"]
    plain = (p1["tokens_per_s"] + p2["tokens_per_s"]) / 2
    ray1, unp, ray2 = r["ray_1w"], r["ray_1w_unpacked"], r["ray_2w"]
    overhead = 1 - ray1["tokens_per_s"] / plain
    rows = [
        ("Ray overhead", "plain PyTorch loop, 1 process", plain, "tok/s",
         f"mean of 2 runs: {p1['tokens_per_s']:.0f} before, {p2['tokens_per_s']:.0f} after the Ray run; "
         f"{a.cpus_per_worker:g} torch thread(s)"),
        ("Ray overhead", "Ray Train, 1 worker (run_finetune)", ray1["tokens_per_s"], "tok/s",
         f"data wait {ray1['data_time'] * 1000:.0f} ms/step of {ray1['step_time'] * 1000:.0f}; run {ray1['wall_s']:.0f} s "
         f"wall, {ray1['steps_s']:.0f} s in steps; other Ray processes {ray1['cpu_s']['ray_other']:.0f} CPU-s"),
        ("Ray overhead", "overhead = 1 - ray/plain", overhead, "ratio",
         f"target <= {TARGET_OVERHEAD:.0%}: {'met' if overhead <= TARGET_OVERHEAD else 'NOT met'}"),
        ("Packing", "token util, packed (Ray metrics)", ray1["token_util"], "ratio",
         f"target >= {TARGET_UTIL:.0%}: {'met' if ray1['token_util'] >= TARGET_UTIL else 'NOT met'}"),
        ("Packing", "token util, unpacked (Ray metrics)", unp["token_util"], "ratio",
         f"batch of {r['unpacked_batch']} examples, padded to the longest"),
        ("Packing", "token util, packed (whole set, collate)", r["whole_set_util"]["packed"], "ratio",
         f"{r['n_rows']} rows from {r['n_examples']} examples"),
        ("Packing", "token util, unpacked (whole set, collate)", r["whole_set_util"]["unpacked"], "ratio", ""),
        ("Packing", "tokens/s packed (Ray, 1 worker)", ray1["tokens_per_s"], "tok/s", ""),
        ("Packing", "tokens/s unpacked (Ray, 1 worker)", unp["tokens_per_s"], "tok/s", ""),
        ("Packing", "speed-up packed/unpacked", ray1["tokens_per_s"] / unp["tokens_per_s"], "x",
         "real tokens per second"),
        ("Scaling", f"1 worker x {a.cpus_per_worker:g} CPU", ray1["tokens_per_s"], "tok/s", ""),
        ("Scaling", "2 workers x 1 CPU (DDP, gloo)", ray2["tokens_per_s"], "tok/s",
         f"run {ray2['wall_s']:.0f} s wall, {ray2['steps_s']:.0f} s in steps; other Ray processes "
         f"{ray2['cpu_s']['ray_other']:.0f} CPU-s"),
        ("Scaling", "2 workers / 1 worker", ray2["tokens_per_s"] / ray1["tokens_per_s"], "x",
         f"{os.cpu_count()} cores here: ideal <= 2x, shared with Ray's own processes"),
    ]
    return [dict(zip(("section", "measure", "value", "unit", "note"), x)) for x in rows]


def format_table(rows: list[dict]) -> str:
    def fmt(v, unit):
        if unit == "tok/s":
            return f"{v:,.0f} tok/s"
        if unit == "x":
            return f"{v:.2f}x"
        return f"{v:.1%}"

    lines = [f"{'section':13} {'measure':41} {'value':>12}  note", "-" * 110]
    for r in rows:
        lines.append(f"{r['section']:13} {r['measure']:41} {fmt(r['value'], r['unit']):>12}  {r['note']}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- main
def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sft", default=str(DEMO_SFT), help="SFT build output folder holding train/ and validation/")
    ap.add_argument("--examples", type=int, default=600, help="training examples (sampled from --sft/train)")
    ap.add_argument("--val-examples", type=int, default=4, help="validation examples (eval before/after, untimed)")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per run (train.max_steps)")
    ap.add_argument("--warmup", type=int, default=2, help="first steps left out of tokens/s on both sides")
    ap.add_argument("--log-every", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=2, help="packed rows per worker per step")
    ap.add_argument("--max-seq-len", type=int, default=512)
    ap.add_argument("--cpus-per-worker", type=float, default=1.0,
                    help="CPUs (= torch threads) of the 1-worker runs and of the plain loop")
    ap.add_argument("--tiny", default=json.dumps(MID_TINY), help="train.tiny overrides (JSON) of the model")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", help="folder for the runs' outputs (default: a temporary folder, removed)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--quick", action="store_true", help="smoke run: tiny model and data, 4 steps")
    a = ap.parse_args(argv)
    if a.quick:
        a.examples, a.val_examples, a.steps, a.warmup, a.log_every = min(a.examples, 120), 2, 4, 1, 1
        a.max_seq_len, a.tiny = min(a.max_seq_len, 256), json.dumps(QUICK_TINY)
    tiny = json.loads(a.tiny)

    from sft_ray.models import load_tokenizer, resolve_model
    from sft_ray.runtime import init_ray

    load_start = os.getloadavg()
    os.environ.pop("RAY_ADDRESS", None)
    init_ray()  # once for every Ray run; its processes settle while the driver tokenizes

    t0 = time.perf_counter()
    train, val, origin = load_examples(Path(a.sft), a.examples, a.val_examples, a.seed)
    model_path = resolve_model("tiny-llama", tiny=tiny, seed=a.seed)
    tok = load_tokenizer(model_path)
    ids, labels = tokenize_all(tok, train, a.max_seq_len)
    base = {"model": "tiny-llama", "tiny": tiny, "seed": a.seed, "max_seq_len": a.max_seq_len,
            "max_steps": a.steps, "log_every": a.log_every, "checkpoint_every": 10**6, "num_to_keep": 1,
            "eval_max_examples": max(1, a.val_examples), "task_eval_max_examples": 0}
    from sft_ray.config import TrainConfig

    pack_window = TrainConfig().pack_window
    rows = pack_windows(ids, labels, a.max_seq_len, pack_window)
    unpacked_batch = max(1, round(a.batch_size * len(ids) / len(rows)))
    util = whole_set_util(ids, labels, rows, a.batch_size, unpacked_batch, tok.pad_token_id, a.seed)
    lengths = np.array([len(x) for x in ids])
    print(f"{len(train)} examples from {origin}: {len(ids)} kept, {lengths.mean():.0f} tokens mean "
          f"(max {lengths.max()}), {len(rows)} packed rows of <= {a.max_seq_len}; model {model_path} "
          f"({tiny}); prepared in {time.perf_counter() - t0:.1f} s", flush=True)
    # Every run must finish within one pass over the data: a second epoch re-runs the pipeline mid-run.
    need = {"2 workers, packed": 2 * a.steps * a.batch_size, "1 worker, unpacked": a.steps * unpacked_batch}
    have = {"2 workers, packed": len(rows) - len(rows) % 2, "1 worker, unpacked": len(ids)}
    short = [f"{k}: {need[k]} rows needed, {have[k]} there" for k in need if have[k] < need[k]]
    if short:
        raise SystemExit(f"--examples {a.examples} is too few for --steps {a.steps}: " + "; ".join(short))
    skip = warmup_boundary(a.steps, a.log_every, a.warmup)

    from sft_ray.config import RunConfig

    work = Path(a.work) if a.work else Path(tempfile.mkdtemp(prefix="sft_ray_train_tp_"))
    work.mkdir(parents=True, exist_ok=True)
    one = {**base, "num_workers": 1, "cpus_per_worker": a.cpus_per_worker, "batch_size": a.batch_size}
    plain_cfg = RunConfig.model_validate({"train": {**one, "packing": True}})
    r: dict = {"n_examples": len(train), "n_rows": len(rows), "unpacked_batch": unpacked_batch,
               "whole_set_util": util}
    try:
        # Plain runs around the Ray 1-worker run: their spread shows how much the shared machine moved.
        print("plain loop (1/2) ...", flush=True)
        r["plain_1"] = plain_loop(model_path, rows, plain_cfg, skip, tok.pad_token_id)
        print("Ray Train, 1 worker, packed ...", flush=True)
        r["ray_1w"] = ray_run(work, "ray_1w", train, val, {**one, "packing": True}, skip)
        print("plain loop (2/2) ...", flush=True)
        r["plain_2"] = plain_loop(model_path, rows, plain_cfg, skip, tok.pad_token_id)
        print("Ray Train, 1 worker, unpacked ...", flush=True)
        r["ray_1w_unpacked"] = ray_run(work, "ray_1w_unpacked", train, val,
                                       {**one, "packing": False, "batch_size": unpacked_batch}, skip)
        print("Ray Train, 2 workers, packed ...", flush=True)
        r["ray_2w"] = ray_run(work, "ray_2w", train, val, {**base, "num_workers": 2, "cpus_per_worker": 1,
                                                           "batch_size": a.batch_size, "packing": True}, skip)
    finally:
        if not a.work:
            shutil.rmtree(work, ignore_errors=True)

    table = result_rows(r, a)
    load_end = os.getloadavg()
    print()
    print(f"train throughput on CPU: {os.cpu_count()} cores, load average {load_start[0]:.1f} at start, "
          f"{load_end[0]:.1f} at end; model tiny-llama {tiny}; seq len {a.max_seq_len}, {a.batch_size} packed "
          f"rows/step/worker, {a.steps} steps, steps 1-{skip} left out as warm-up")
    print(format_table(table))
    out = {"config": {k: v for k, v in vars(a).items() if k != "json"} | {"tiny": tiny, "warmup_steps_skipped": skip,
                                                                           "model_path": model_path, "data": origin},
           "machine": {"cpus": os.cpu_count(), "loadavg_start": load_start, "loadavg_end": load_end},
           "rows": table,
           "runs": {k: {kk: vv for kk, vv in v.items()} for k, v in r.items() if isinstance(v, dict) and "tokens_per_s" in v}}
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1, default=str))
    return out


if __name__ == "__main__":
    main()
