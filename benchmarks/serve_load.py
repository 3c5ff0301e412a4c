"""Serving under bounded load: the Ray Serve chat app vs a plain transformers `generate` loop.

    python benchmarks/serve_load.py                                  # tiny-llama, 1/4/16 clients
    python benchmarks/serve_load.py --model runs/demo --max-tokens 32 --requests 32

1. Starts the app (`sft_ray.serve.app.run_serve`, one replica, `--threads` torch threads) on a
   free loopback port.
2. Spawns a *second process* (this file with `--client URL`) that, for each concurrency level,
   keeps that many clients busy with POST /v1/chat/completions until `--requests` answers have
   come back (after a short warm-up), and reports requests/s, p50 and p99 latency and generated
   tokens/s. Load generation never shares an interpreter (or its GIL) with the server.
3. The peer, side by side: the same model, prompts, greedy decoding and `max_tokens` through
   plain `transformers` with no Serve and no HTTP, in this process with the same thread count:
   one `generate` per request (what concurrency 1 costs without a server), and batches of 16
   left-padded prompts (the most a single process gets out of batching). It runs in a child
   process at the replica's niceness: Ray starts its workers at `nice` 15, which on a machine
   shared with other work (like this project's 2-core reference box) would otherwise hand the
   peer the CPU the replica is denied.

Prompts are short chat turns (demo-style questions). Greedy decoding with a random tiny model
almost never emits the end token, so every answer runs to `max_tokens` and all rows do the same
work; with a real model answers may stop earlier (the table reports generated tokens/s too).
Results: printed table + benchmarks/results/serve_load.json (the command and machine included).
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PROMPTS = [
    "What is the capital of France?",
    "Translate to German: The children are playing in the park.",
    "Write a headline for: Stocks rallied on Friday after the central bank held rates steady.",
    "Is this news about World, Sports, Business or Sci/Tech? The team won the championship final.",
    "Name three colours of the rainbow.",
    "Summarise in one sentence: A new telescope captured images of a distant galaxy.",
    "Translate to German: A man is riding a bicycle down the street.",
    "What is two plus two?",
]


def _messages(i: int) -> list[dict]:
    return [{"role": "user", "content": PROMPTS[i % len(PROMPTS)]}]


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    k = min(len(xs) - 1, max(0, round(q * (len(xs) - 1))))
    return xs[k]


# ------------------------------------------------------------------------------------ client side
def run_client(url: str, levels: list[int], n_requests: int, max_tokens: int, model: str) -> list[dict]:
    """Bounded closed-loop load: `c` clients, `n_requests` answers per level (+ c warm-up answers)."""
    import requests

    rows = []
    for c in levels:
        sessions = [requests.Session() for _ in range(c)]

        def one(k: int, session) -> tuple[float, int]:
            t = time.perf_counter()
            r = session.post(f"{url}/v1/chat/completions", timeout=600, json={
                "model": model, "messages": _messages(k), "max_tokens": max_tokens, "temperature": 0})
            r.raise_for_status()
            return time.perf_counter() - t, r.json()["usage"]["completion_tokens"]

        def worker(w: int, todo: list[int], out: list) -> None:
            while True:
                with lock:
                    if not todo:
                        return
                    k = todo.pop()
                out.append(one(k, sessions[w]))

        lock = threading.Lock()
        for phase in ("warmup", "measure"):
            todo = list(range(c if phase == "warmup" else n_requests))
            out: list = []
            t0 = time.perf_counter()
            with cf.ThreadPoolExecutor(c) as ex:
                list(ex.map(lambda w: worker(w, todo, out), range(c)))
            wall = time.perf_counter() - t0
        lat = [x for x, _ in out]
        toks = sum(t for _, t in out)
        rows.append({"concurrency": c, "requests": len(out), "wall_s": round(wall, 3),
                     "requests_per_s": round(len(out) / wall, 3), "p50_s": round(_pct(lat, 0.5), 4),
                     "p99_s": round(_pct(lat, 0.99), 4), "gen_tokens_per_s": round(toks / wall, 1),
                     "mean_completion_tokens": round(toks / len(out), 1)})
        print(f"  client: c={c} {rows[-1]}", file=sys.stderr, flush=True)
    return rows


# ------------------------------------------------------------------------------------ peer side
def run_peer(model_dir: str, n_requests: int, max_tokens: int, threads: int) -> list[dict]:
    """Plain transformers on the same model: one generate per request, then batches of 16."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    tok.padding_side = "left"
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompts = [tok.apply_chat_template(_messages(k), add_generation_prompt=True, tokenize=False)
               for k in range(n_requests)]
    rows = []
    for batch in (1, 16):
        with torch.inference_mode():
            enc = tok(prompts[:batch], return_tensors="pt", padding=True, add_special_tokens=False)
            model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)  # warm-up
            lat, toks = [], 0
            t0 = time.perf_counter()
            for s in range(0, n_requests, batch):
                enc = tok(prompts[s:s + batch], return_tensors="pt", padding=True, add_special_tokens=False)
                t = time.perf_counter()
                out = model.generate(**enc, max_new_tokens=max_tokens, do_sample=False, pad_token_id=tok.pad_token_id)
                dt = time.perf_counter() - t
                new = out[:, enc["input_ids"].shape[1]:]
                for row in new.tolist():
                    n = next((i for i, t_ in enumerate(row) if t_ == tok.eos_token_id), len(row))
                    toks += n
                    lat.append(dt)
            wall = time.perf_counter() - t0
        rows.append({"peer": f"transformers generate, batch {batch}", "batch": batch, "requests": n_requests,
                     "wall_s": round(wall, 3), "requests_per_s": round(n_requests / wall, 3),
                     "p50_s": round(_pct(lat, 0.5), 4), "p99_s": round(_pct(lat, 0.99), 4),
                     "gen_tokens_per_s": round(toks / wall, 1), "mean_completion_tokens": round(toks / n_requests, 1)})
        print(f"  peer: {rows[-1]}", file=sys.stderr, flush=True)
    return rows


# ------------------------------------------------------------------------------------ driver
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="tiny-llama", help="run folder, model folder or name (tiny-llama, smollm2-135m-instruct)")
    ap.add_argument("--levels", default="1,4,16", help="client concurrency levels")
    ap.add_argument("--requests", type=int, default=48, help="measured answers per level (after a warm-up)")
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--threads", type=int, default=max(1, min(2, os.cpu_count() or 1)), help="torch threads (server and peer)")
    ap.add_argument("--max-batch-size", type=int, default=16)
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "serve_load.json"))
    ap.add_argument("--client", help=argparse.SUPPRESS)  # internal: run as the load-generating process
    ap.add_argument("--served-name", help=argparse.SUPPRESS)
    ap.add_argument("--peer", help=argparse.SUPPRESS)  # internal: run the no-Serve peer on this model folder
    ap.add_argument("--nice", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    levels = [int(x) for x in args.levels.split(",")]

    if args.client:
        print(json.dumps(run_client(args.client, levels, args.requests, args.max_tokens, args.served_name)))
        return 0
    if args.peer:
        os.nice(max(0, args.nice - os.nice(0)))
        print(json.dumps(run_peer(args.peer, args.requests, args.max_tokens, args.threads)))
        return 0

    from ray import serve

    from sft_ray.models import resolve_model
    from sft_ray.serve.app import run_serve
    from sft_ray.serve.config import ServeConfig
    from sft_ray.serve.location import model_location

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ServeConfig(model=args.model, port=port, num_cpus=1, torch_threads=args.threads,
                      max_batch_size=args.max_batch_size, batch_wait_timeout_s=0.01,
                      max_tokens_limit=max(512, args.max_tokens), max_ongoing_requests=max(64, args.max_batch_size))
    t0 = time.time()
    run_serve(cfg)
    startup = time.time() - t0
    print(f"serve up in {startup:.1f} s at http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    try:
        proc = subprocess.run([sys.executable, __file__, "--client", f"http://127.0.0.1:{port}", "--levels", args.levels,
                               "--requests", str(args.requests), "--max-tokens", str(args.max_tokens),
                               "--served-name", cfg.model_name()], capture_output=True, text=True, check=False)
        sys.stderr.write(proc.stderr)
        if proc.returncode != 0:
            print(f"client process failed ({proc.returncode})", file=sys.stderr)
            return 1
        served = json.loads(proc.stdout.strip().splitlines()[-1])
        import requests

        health = requests.get(f"http://127.0.0.1:{port}/health", timeout=60).json()
        import ray

        worker_nice = ray.get(ray.remote(num_cpus=0)(lambda: os.nice(0)).remote())
    finally:
        serve.shutdown()
    proc = subprocess.run([sys.executable, __file__, "--peer", resolve_model(model_location(args.model)),
                           "--requests", str(args.requests), "--max-tokens", str(args.max_tokens),
                           "--threads", str(args.threads), "--nice", str(worker_nice)],
                          capture_output=True, text=True, check=False)
    sys.stderr.write(proc.stderr)
    if proc.returncode != 0:
        print(f"peer process failed ({proc.returncode})", file=sys.stderr)
        return 1
    peer = json.loads(proc.stdout.strip().splitlines()[-1])

    p1, p16 = peer[0], peer[1]
    print(f"\nmodel {args.model}, {args.requests} requests per level, max_tokens {args.max_tokens}, greedy, "
          f"{args.threads} torch threads, {os.cpu_count()} CPUs, nice {worker_nice} (replica and peer); "
          f"Serve max_batch_size {args.max_batch_size}")
    hdr = f"{'setup':<44} {'req/s':>8} {'p50 s':>8} {'p99 s':>8} {'gen tok/s':>10} {'vs peer':>8}"
    print(hdr + "\n" + "-" * len(hdr))
    for r in served:
        ref = p1 if r["concurrency"] == 1 else p16
        print(f"{'Ray Serve + HTTP, ' + str(r['concurrency']) + ' concurrent clients':<44} {r['requests_per_s']:>8.2f} "
              f"{r['p50_s']:>8.3f} {r['p99_s']:>8.3f} {r['gen_tokens_per_s']:>10.1f} "
              f"{r['requests_per_s'] / ref['requests_per_s']:>7.2f}x")
    for r in peer:
        print(f"{'peer: ' + r['peer']:<44} {r['requests_per_s']:>8.2f} {r['p50_s']:>8.3f} {r['p99_s']:>8.3f} "
              f"{r['gen_tokens_per_s']:>10.1f} {'':>8}")
    print("(vs peer: requests/s over the plain generate loop at batch 1 for 1 client, batch 16 otherwise; "
          f"replica batches seen: {health.get('batches')} for {health.get('batched_requests')} requests, "
          f"largest {health.get('max_batch')})")
    result = {"command": "python " + " ".join(sys.argv), "model": args.model, "requests_per_level": args.requests,
              "max_tokens": args.max_tokens, "threads": args.threads, "max_batch_size": args.max_batch_size,
              "cpus": os.cpu_count(), "machine": platform.platform(), "serve_startup_s": round(startup, 1),
              "load_avg_1m": os.getloadavg()[0], "nice": worker_nice, "served": served, "peer": peer, "replica_stats": health,
              "ratio_vs_peer": {str(r["concurrency"]): round(r["requests_per_s"] / (p1 if r["concurrency"] == 1 else p16)["requests_per_s"], 3)
                                for r in served}}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
