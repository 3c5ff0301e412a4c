"""Labeler engines side by side: torch fp32 vs ONNX Runtime fp32 vs ONNX Runtime int8 (label.engine).

    .venv/bin/python benchmarks/labeler_engines.py                 # 2,000 AG News rows, 4 interleaved rounds
    .venv/bin/python benchmarks/labeler_engines.py --rows 400      # a quick look

For each engine the topic head is fitted exactly as the build fits it (`load_seed` -> that engine's
embeddings -> `fit_head`, the default 1,000-row balanced AG News seed, 5-fold CV), then `--rows`
AG News rows *not in the seed* are embedded and labelled. Throughput is docs per CPU-second of this
process with 1 thread per engine (torch.set_num_threads(1), onnxruntime intra_op_num_threads=1:
one labeler actor with num_cpus=1), and docs per wall-second beside it. The rows are split into
`--rounds` chunks and every chunk goes through all engines in turn (order rotated each round), so
load from other processes on a shared machine falls on all engines alike; the ratio to torch is the
number to read. Accuracy is against AG News gold labels; agreement is the share of rows where the
engine's labels equal torch's (own head, and torch's head applied to the engine's embeddings).

Corpora: $SFT_RAY_CORPORA (default /work/shared/corpora) news/ag_news/ag_news_test_part.csv, else the
copy shipped in sft_ray/demo/data/.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_average, table, topic_seed_and_held_out
from sft_ray.config import LabelConfig
from sft_ray.label.classifier import fit_head
from sft_ray.label.embed import ENGINES, make_embedder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=2000, help="held-out AG News rows embedded by each engine")
    ap.add_argument("--rounds", type=int, default=4, help="interleaved rounds (chunks of the rows)")
    ap.add_argument("--batch-size", type=int, default=LabelConfig().embed_batch_size)
    ap.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    args = ap.parse_args()

    spec, seed, texts, gold, names = topic_seed_and_held_out(args.rows)
    print(f"# Labeler engines: {len(seed.texts)} seed rows, {len(texts)} held-out AG News rows ({spec.path}); "
          f"load average before: {load_average()}\n")

    t0 = time.time()
    engines = {e: make_embedder(engine=e, num_threads=1) for e in args.engines}
    print(f"engines loaded in {time.time() - t0:.1f} s (the ONNX export is built once into $SFT_RAY_CACHE)\n")
    heads = {}
    for e, emb in engines.items():
        x = emb.encode(seed.texts, args.batch_size)
        heads[e] = fit_head(x, seed.labels, seed.label_names, folds=spec.calibration_folds, seed=spec.sample_seed)
        emb.encode(texts[:args.batch_size], args.batch_size)  # warm-up: first-call allocations are not per-document cost

    out = {e: np.zeros((len(texts), engines[e].dim), dtype=np.float32) for e in engines}
    cpu = dict.fromkeys(engines, 0.0)
    wall = dict.fromkeys(engines, 0.0)
    chunks = np.array_split(np.arange(len(texts)), args.rounds)
    order = list(engines)
    for r, idx in enumerate(chunks):
        for e in order[r % len(order):] + order[: r % len(order)]:
            c, w = time.process_time(), time.perf_counter()
            out[e][idx] = engines[e].encode([texts[i] for i in idx], args.batch_size)
            cpu[e] += time.process_time() - c
            wall[e] += time.perf_counter() - w

    base = "torch" if "torch" in engines else order[0]
    pred = {e: np.array([names.index(p) for p in heads[e].predict(out[e])[0]]) for e in engines}
    cross = {e: np.array([names.index(p) for p in heads[base].predict(out[e])[0]]) for e in engines}
    body = []
    for e in engines:
        dps, wps = len(texts) / cpu[e], len(texts) / wall[e]
        acc = float((pred[e] == gold).mean())
        body.append([e, round(dps, 1), round(wps, 1), round(dps / (len(texts) / cpu[base]), 2), round(100 * acc, 2),
                     round(100 * (acc - float((pred[base] == gold).mean())), 2),
                     round(100 * float((pred[e] == pred[base]).mean()), 2), round(100 * float((cross[e] == pred[base]).mean()), 2)])
    print(table(["engine", "docs/CPU-s", "docs/wall-s", f"x {base} (CPU)", "topic acc %", "acc - torch (pts)",
                 "labels = torch % (own head)", "labels = torch % (torch head)"], body))
    size = {e: os.path.getsize(engines[e].path) / 2**20 for e in engines if hasattr(engines[e], "path")}
    if size:
        print("\nONNX files: " + ", ".join(f"{e} {s:.0f} MiB" for e, s in size.items()))
    print(f"\nload average after: {load_average()}")


if __name__ == "__main__":
    main()
