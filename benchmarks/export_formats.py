"""What each export format costs and keeps: file size, CPU tokens/s, quality against fp32.

    python benchmarks/export_formats.py [--data OUTPUT] [--model DIR] [--examples 6] [--loss-examples 16]

The model is the demo's base model (SmolLM2-135M-Instruct, shipped in a package: sft_ray/models.py)
or `--model`, a finished run's `<output>/train/model`. It is exported once per format with the
pipeline's own code (`export_model`, `export_dtypes`, `export_gguf`): fp32 / bf16 / f16 safetensors
and GGUF f16 / Q8_0 / Q5_0 / Q4_0. Per format:

- size: the weights file(s) (a GGUF also holds the tokenizer, ~3 MB of it).
- tokens/s: greedy generation of `--new-tokens` tokens (eos ignored, so every format makes the same
  number) for each of the first `--speed-prompts` validation prompts, one at a time, one CPU thread
  per engine. Safetensors run in transformers in their own dtype. GGUF runs in llama.cpp
  (llama-cpp-python) when it is importable; otherwise transformers' GGUF loader, which dequantizes
  to fp32, so its speed is fp32's and says nothing about the file: the table says which engine ran.
- quality on the validation split of a demo build (`--data`, built with `sft-ray build` if it has no
  `_SUCCESS`): token-weighted validation loss / perplexity on `--loss-examples` rows
  (sft_ray/train/evaluate.py, the training code's own) and the task metrics (accuracy, chrF,
  rougeL; sft_ray/train/task_eval.py) on `--examples` rows per task, each with its drop from fp32.
  Quality is measured with the format's stored weights computed in fp32 (half-precision weights
  upcast; GGUF blocks dequantized by transformers' loader): it isolates the rounding of the
  weights, the same on every engine; llama.cpp's own 8-bit rounding of activations in its
  quantized dot products is not in it.

Writes benchmarks/results/export_formats.md (and .json).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import BENCH_CACHE, ROOT, load_average, mib, table  # noqa: E402

FORMATS = ("fp32", "bf16", "f16", "gguf-f16", "gguf-q8_0", "gguf-q5_0", "gguf-q4_0")


def _validation_rows(data: Path) -> list[dict]:
    import pyarrow.parquet as pq

    if not (data / "_SUCCESS").exists():
        print(f"building the demo SFT data into {data} (sft-ray build) ...", flush=True)
        subprocess.run([sys.executable, "-m", "sft_ray.cli", "build", "--set", f"output={data}"], check=True, cwd=ROOT)
    rows = pq.read_table(data / "sft" / "validation").to_pylist()
    return sorted(rows, key=lambda r: r["id"])


def _per_task(rows: list[dict], k: int) -> list[dict]:
    """The first `k` rows (by id) of each task: the same rows for every format."""
    seen: dict[str, int] = {}
    out = []
    for r in rows:
        if seen.get(r["task"], 0) < k:
            seen[r["task"]] = seen.get(r["task"], 0) + 1
            out.append(r)
    return out


def _export_all(model, tok, work: Path) -> dict[str, Path]:
    from sft_ray.train.export import export_dtypes, export_model
    from sft_ray.train.gguf_export import export_gguf

    paths = {"fp32": work / "model"}
    export_model(model, tok, str(paths["fp32"]))
    for d in ("bf16", "f16"):
        paths[d] = work / f"model-{d}"
    export_dtypes(model, tok, str(work), ["bf16", "f16"])
    for q in ("f16", "q8_0", "q5_0", "q4_0"):
        paths[f"gguf-{q}"] = work / f"model.{q}.gguf"
        t = time.perf_counter()
        export_gguf(model, tok, str(paths[f"gguf-{q}"]), q)
        print(f"  gguf {q}: {time.perf_counter() - t:.1f} s", flush=True)
    return paths


def _size(path: Path) -> int:
    return path.stat().st_size if path.is_file() else sum(f.stat().st_size for f in path.glob("*.safetensors"))


def _load_torch(fmt: str, path: Path, fp32: bool):
    import torch
    from transformers import AutoModelForCausalLM

    if fmt.startswith("gguf"):
        return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32).eval()
    m = AutoModelForCausalLM.from_pretrained(str(path)).eval()  # the folder's own dtype
    return m.float() if fp32 else m


def _speed_torch(model, prompts: list[list[int]], new: int) -> float:
    import torch

    n, t = 0, time.perf_counter()
    with torch.no_grad():
        for p in prompts:
            ids = torch.tensor([p])
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new,
                                 min_new_tokens=new, do_sample=False, pad_token_id=0)
            n += out.shape[1] - ids.shape[1]
    return n / (time.perf_counter() - t)


def _speed_llama_cpp(path: Path, prompts: list[list[int]], new: int, threads: int) -> float:
    from llama_cpp import Llama

    llm = Llama(model_path=str(path), n_ctx=1024, n_threads=threads, n_threads_batch=threads, verbose=False)
    n, t = 0, time.perf_counter()
    for p in prompts:
        for i, _ in enumerate(llm.generate(p, top_k=1, temp=0.0, reset=True)):  # greedy; eos not checked
            if i + 1 >= new:
                break
        n += new
    rate = n / (time.perf_counter() - t)
    llm.close()  # freed now, not in __del__ at interpreter exit (llama-cpp-python then fails noisily)
    return rate


def _quality(model, tok, loss_rows: list[dict], task_rows: list[dict], new: int) -> dict:
    import torch

    from sft_ray.train.evaluate import evaluate, validation_batches
    from sft_ray.train.task_eval import task_metrics
    from sft_ray.train.tokenize import PadCollate

    cpu = torch.device("cpu")
    batches = validation_batches(tok, loss_rows, 256, 4, PadCollate(tok.pad_token_id), cpu)
    ev = evaluate(model, batches, device=cpu)
    tm = task_metrics(model, tok, task_rows, device=cpu, max_new_tokens=new, batch_size=4, keep_samples=0)
    tasks = {t: {k: v for k, v in m.items() if k not in ("n", "skipped")} for t, m in tm.items() if t != "samples"}
    return {"loss": ev["loss"], "perplexity": ev["perplexity"], "tasks": tasks}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=BENCH_CACHE / "runs" / "export_formats_demo",
                    help="a demo build's output (its sft/validation); built with `sft-ray build` when it has no _SUCCESS")
    ap.add_argument("--model", default=None, help="a HF folder (a run's train/model); default the demo's base model")
    ap.add_argument("--examples", type=int, default=6, help="validation rows per task for task metrics")
    ap.add_argument("--loss-examples", type=int, default=16, help="validation rows for loss / perplexity")
    ap.add_argument("--speed-prompts", type=int, default=3)
    ap.add_argument("--new-tokens", type=int, default=24, help="tokens generated per prompt (speed) and most per answer (tasks)")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads per engine")
    ap.add_argument("--formats", default=",".join(FORMATS))
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "export_formats.md")
    args = ap.parse_args(argv)

    import torch

    from sft_ray.models import load_model, load_tokenizer, resolve_model
    from sft_ray.train.task_eval import _prompt_ids

    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    model_path = args.model or resolve_model("smollm2-135m-instruct")
    model, tok = load_model(model_path), load_tokenizer(model_path)
    rows = _validation_rows(args.data)
    loss_rows = _per_task(rows, -(-args.loss_examples // len({r["task"] for r in rows})))[: args.loss_examples]
    task_rows = _per_task(rows, args.examples)
    prompts = [_prompt_ids(tok, r["messages"][:-1]) for r in task_rows[: args.speed_prompts]]
    try:
        import llama_cpp  # noqa: F401

        gguf_engine = f"llama.cpp (llama-cpp-python {llama_cpp.__version__})"
    except ImportError:
        llama_cpp = None
        gguf_engine = "transformers GGUF loader (dequantized to fp32; llama_cpp not importable)"
    formats = [f for f in args.formats.split(",") if f]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="sft_ray_export_formats_") as tmp:
        print("exporting ...", flush=True)
        paths = _export_all(model, tok, Path(tmp))
        del model
        for fmt in formats:
            t = time.perf_counter()
            r: dict = {"bytes": _size(paths[fmt])}
            if fmt.startswith("gguf") and llama_cpp is not None:
                r["engine"] = "llama.cpp"
                r["tokens_per_s"] = _speed_llama_cpp(paths[fmt], prompts, args.new_tokens, args.threads)
            else:
                r["engine"] = "transformers" + (" (GGUF dequantized, fp32)" if fmt.startswith("gguf") else f" ({fmt})")
                r["tokens_per_s"] = _speed_torch(_load_torch(fmt, paths[fmt], fp32=False), prompts, args.new_tokens)
            r.update(_quality(_load_torch(fmt, paths[fmt], fp32=True), tok, loss_rows, task_rows, args.new_tokens))
            results[fmt] = r
            print(f"  {fmt}: {json.dumps({k: v for k, v in r.items()})} ({time.perf_counter() - t:.0f} s)", flush=True)

    ref = results.get("fp32")
    metric_cols = sorted({(t, m) for r in results.values() for t, ms in r["tasks"].items() for m in ms})
    header = ["format", "size MiB", "vs fp32", "engine", "tokens/s", "val loss", "ppl", "Δppl"] + \
             [f"{t} {m}" for t, m in metric_cols] + [f"Δ{t} {m}" for t, m in metric_cols]
    body = []
    for fmt, r in results.items():
        vals = [r["tasks"].get(t, {}).get(m, float("nan")) for t, m in metric_cols]
        drops = [v - ref["tasks"].get(t, {}).get(m, float("nan")) if ref else float("nan") for v, (t, m) in zip(vals, metric_cols)]
        body.append([fmt, mib(r["bytes"]), f"{r['bytes'] / ref['bytes']:.2f}x" if ref else "-", r["engine"],
                     round(r["tokens_per_s"], 1), r["loss"], round(r["perplexity"], 2),
                     round(r["perplexity"] - ref["perplexity"], 2) if ref else "-"] + [round(v, 1) for v in vals] +
                    [round(d, 1) for d in drops])
    n_tasks = {t: sum(1 for r in task_rows if r["task"] == t) for t in sorted({r["task"] for r in task_rows})}
    md = "\n".join([
        "# Export formats: size, CPU speed, quality against fp32",
        "",
        f"Command: `python benchmarks/export_formats.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"Model: {args.model or 'smollm2-135m-instruct (the demo base model)'}; validation data: {args.data}/sft/validation "
        f"({len(rows)} rows): loss on {len(loss_rows)} rows, task metrics on {n_tasks} rows, "
        f"{args.new_tokens} new tokens at most per answer; speed: {len(prompts)} prompts x {args.new_tokens} tokens, greedy, "
        f"{args.threads} CPU thread(s) per engine. GGUF speed engine: {gguf_engine}.",
        "Quality is computed in fp32 from each format's stored weights (see the script's docstring). "
        "Δ columns: format minus fp32 (perplexity: higher is worse; metrics 0-100: lower is worse).",
        f"Machine: {os.cpu_count()} cores, {load_average()} at the end (other jobs shared the cores: "
        f"tokens/s are comparable within this table only). Wall time {time.perf_counter() - t0:.0f} s.",
        "",
        table(header, body),
        "",
    ])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(md)
    args.out.with_suffix(".json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                        "gguf_engine": gguf_engine, "results": results}, indent=1))
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
