"""Label stage quality and throughput: topic (AG News), sentiment (rt-polarity) and quality (main
content vs boilerplate on gold web pages) heads on MiniLM.

    .venv/bin/python benchmarks/label_quality.py                          # everything (~10 min on 2 busy cores)
    .venv/bin/python benchmarks/label_quality.py --skip-throughput        # quality tables only
    .venv/bin/python benchmarks/label_quality.py --labelers quality --skip-throughput   # quality score vs heuristics
    .venv/bin/python benchmarks/label_quality.py --skip-quality                           # throughput only
    .venv/bin/python benchmarks/label_quality.py --eval-rows 400 --throughput-rows 512   # a quick look

Quality: each head is fitted exactly as the build fits it (`sft_ray.label.seed.load_seed` -> embed
-> `fit_head`, <= --seed-rows balanced seed rows, 5-fold CV over them for L2 + temperature), then
scored on rows of the same corpus that were *not* in the seed (a balanced sample of --eval-rows;
0 = all). Printed: accuracy (targets: topic >= 0.85, sentiment >= 0.75), per-class P/R/F1,
confusion matrix, expected calibration error (15 equal-width bins), and accuracy/coverage of the
rows kept at several `min_confidence` values (what action=reject would keep). The quality head is
scored on held-out pages side by side with the clean stage's heuristics: see benchmarks/quality_score.py.

Throughput: (a) `Embedder.encode` in process with 1 torch thread (one actor's share of a CPU) for
embedding batch sizes 32/64/128; (b) `label_dataset` through Ray Data with the actor pool at
concurrency 1 and 2 (num_cpus 1 each) and 1 actor x 2 CPUs, on AG News records. Each Ray run starts
fresh actors (imports + model load, tens of seconds on a busy machine), so besides wall time it
prints when the first labelled batch came out and "steady docs/s": the rows after the first batch
over the time from the first batch to the last. The machine's load average is printed before and
after: the numbers are only comparable on a quiet machine.

Corpora: $SFT_RAY_CORPORA (default /work/shared/corpora): news/ag_news/ag_news_test_part.csv
(3,800 rows: class_index 1..4, title, description) and sentiment/rt-polarity/rt-polarity.{pos,neg}
(5,331 each, one review snippet per line).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_average, table
from benchmarks.quality_score import run as quality_score
from sft_ray.config import LabelConfig, LabelerConfig, QualityLabelerConfig, SentimentLabelerConfig, TopicLabelerConfig
from sft_ray.label import fit_heads
from sft_ray.label.classifier import fit_head
from sft_ray.label.embed import Embedder
from sft_ray.label.metrics import expected_calibration_error
from sft_ray.label.seed import balanced_sample, load_seed, read_seed_rows
from tools import CORPORA

THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.9)


def labelers(seed_rows: int) -> LabelConfig:
    """The default label config, with the sentiment labeler seeded with rt-polarity, topic and sentiment seeds from
    CORPORA (quality: its default seed, derived from CORPORA by tools/make_quality_seed.py)."""
    rt = CORPORA / "sentiment/rt-polarity"
    return LabelConfig(
        enabled=True,
        topic={"seed": {**LabelConfig().topic.seed.model_dump(), "path": str(CORPORA / "news/ag_news/ag_news_test_part.csv"),
                        "max_rows": seed_rows}},
        sentiment={"enabled": True, "seed": {"path": {"positive": str(rt / "rt-polarity.pos"), "negative": str(rt / "rt-polarity.neg")},
                                             "format": "lines", "max_rows": seed_rows}},
    )


def quality(name: str, lcfg: LabelerConfig, embedder: Embedder, eval_rows: int, batch_size: int):
    spec, layers = lcfg.seed, tuple(lcfg.feature_layers)
    t0 = time.time()
    seed = load_seed(spec, where=name)
    head = fit_head(embedder.encode(seed.texts, batch_size, layers=layers), seed.labels, seed.label_names,
                    folds=spec.calibration_folds, seed=spec.sample_seed, layers=layers)
    fit_s = time.time() - t0
    rows, names = read_seed_rows(spec, where=name)
    used = set(seed.positions)
    held = [r for r in rows if r.position not in used]
    if eval_rows:
        held = balanced_sample(held, names, eval_rows, seed=1)
    t1 = time.time()
    pred, conf = head.predict(embedder.encode([r.text for r in held], batch_size, layers=layers))
    eval_s = time.time() - t1
    gold = np.array([names.index(r.label) for r in held])
    guess = np.array([names.index(p) for p in pred])
    correct = gold == guess
    acc = float(correct.mean())

    print(f"\n## {name}: {len(seed.texts)} seed rows, {len(held)} held-out rows of {len(rows)}\n")
    print(f"features: layers {list(layers)}; accuracy **{acc:.4f}**, macro-F1 {_macro_f1(gold, guess, len(names)):.4f}, "
          f"ECE {expected_calibration_error(conf, correct):.4f}; head: l2={head.info['l2']}, T={head.info['temperature']}, "
          f"seed {head.info.get('cv_folds')}-fold CV accuracy {head.info.get('cv_accuracy')}; fit {fit_s:.1f} s (embed seed + fit), "
          f"eval embed {eval_s:.1f} s ({len(held) / eval_s:.0f} docs/s, 2 threads)\n")
    prf = []
    for c, label in enumerate(names):
        tp = int(((guess == c) & (gold == c)).sum())
        p = tp / max(1, int((guess == c).sum()))
        r = tp / max(1, int((gold == c).sum()))
        prf.append([label, p, r, 2 * p * r / max(1e-12, p + r), int((gold == c).sum())])
    print(table(["class", "precision", "recall", "F1", "support"], prf))
    cm = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(cm, (gold, guess), 1)
    print("\nconfusion matrix (rows: gold, columns: predicted)\n")
    print(table(["gold \\ pred", *names], [[names[i], *cm[i].tolist()] for i in range(len(names))]))
    sel = []
    for t in THRESHOLDS:
        keep = conf >= t
        sel.append([t, float(keep.mean()), float(correct[keep].mean()) if keep.any() else float("nan")])
    print("\nmin_confidence: share of rows at or above it and their accuracy\n")
    print(table(["min_confidence", "coverage", "accuracy of kept"], sel))
    return head, held, acc


def _macro_f1(gold, guess, k):
    f1s = []
    for c in range(k):
        tp = ((guess == c) & (gold == c)).sum()
        p, r = tp / max(1, (guess == c).sum()), tp / max(1, (gold == c).sum())
        f1s.append(2 * p * r / max(1e-12, p + r))
    return float(np.mean(f1s))


def embed_batch_sizes(texts: list[str], sizes: list[int]) -> int:
    emb = Embedder(num_threads=1)
    emb.encode(texts[:16], 16)  # warm up
    rows = []
    for bs in sizes:
        t, cpu = time.time(), time.process_time()
        emb.encode(texts, bs)
        dt, dcpu = time.time() - t, time.process_time() - cpu
        rows.append([bs, len(texts), round(dt, 1), round(len(texts) / dt, 1), round(len(texts) / dcpu, 1)])
    print(f"\n## Embedding batch size (in process, 1 torch thread, {len(texts)} AG News docs)\n")
    print("docs per CPU-second is what one uncontended core would do; wall docs/s falls with the machine's load.\n")
    print(table(["embed_batch_size", "docs", "wall s", "docs/s (wall)", "docs per CPU-second"], rows))
    return max(rows, key=lambda r: r[4])[0]


def ray_throughput(texts: list[str], heads: dict, embed_batch_size: int, setups: list[tuple[int, float]], batch_size: int,
                   kind: str = "news"):
    import ray

    from sft_ray import schema
    from sft_ray.label import label_dataset
    from sft_ray.runtime import init_ray

    init_ray()
    n = len(texts)
    recs = [{"id": f"ag-{i}", "source": "ag", "kind": kind, "text": t} for i, t in enumerate(texts)]
    blocks = [schema.records_from_rows(recs[i : i + batch_size]) for i in range(0, n, batch_size)]
    rows = []
    for concurrency, cpus in setups:
        cfg = LabelConfig(enabled=True, concurrency=concurrency, num_cpus=cpus, batch_size=batch_size,
                          embed_batch_size=embed_batch_size)
        ds = label_dataset(ray.data.from_arrow(blocks), cfg, heads=heads)
        t0, arrivals = time.time(), []
        for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
            arrivals.append((time.time(), batch.num_rows))
        wall = arrivals[-1][0] - t0
        assert sum(k for _, k in arrivals) == n
        first_t, first_n = arrivals[0]
        steady = (n - first_n) / max(1e-9, arrivals[-1][0] - first_t)
        rows.append([concurrency, cpus, n, round(wall, 1), round(n / wall, 1), round(first_t - t0, 1), round(steady, 1)])
    print(f"\n## Ray Data label_dataset throughput (AG News texts as {kind} records, heads {sorted(heads)}, "
          f"batch_size {batch_size}, embed_batch_size {embed_batch_size})\n")
    print(table(["actors (max)", "num_cpus/actor", "docs", "wall s", "docs/s (wall)", "first batch out s", "steady docs/s"], rows))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed-rows", type=int, default=1000, help="seed rows per head (balanced)")
    ap.add_argument("--eval-rows", type=int, default=2000, help="held-out rows per task, balanced (0 = all not in the seed)")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--tune-rows", type=int, default=384, help="docs for the embedding batch size sweep")
    ap.add_argument("--batch-sizes", default="32,64,128")
    ap.add_argument("--throughput-rows", type=int, default=1024, help="docs per Ray Data run")
    ap.add_argument("--ray-batch-size", type=int, default=128, help="label.batch_size for the Ray runs (small: finer timing)")
    ap.add_argument("--skip-quality", action="store_true", help="only fit the topic head (for the throughput runs)")
    ap.add_argument("--labelers", default="topic,sentiment,quality", help="heads whose quality is measured")
    ap.add_argument("--json", default=None, help="also write the quality head's numbers (vs heuristics) to this file")
    ap.add_argument("--throughput-heads", default="topic",
                    help="heads the Ray runs apply: topic (AG News as news records), or topic,quality (the same texts as "
                    "text records, which both label; quality adds encoder layers 4-5 to every forward pass)")
    args = ap.parse_args()
    todo = [n for n in args.labelers.split(",") if n]

    print(f"# Label quality benchmark\n\nstart: {load_average()}")
    torch_threads = 2
    embedder = Embedder(num_threads=torch_threads)
    heads, held = {}, {}
    cfg = labelers(args.seed_rows)
    if not args.skip_quality:
        for name in [n for n in ("topic", "sentiment") if n in todo]:
            heads[name], held[name], _ = quality(name, getattr(cfg, name), embedder, args.eval_rows, 64)
        if "quality" in todo:
            result = quality_score(cfg.quality, embedder, 64, CORPORA)
            if args.json:
                Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
        print(f"\nafter quality: {load_average()}")
    if not args.skip_throughput and "topic" not in held:  # the throughput runs label AG News with the topic head
        only_topic = cfg.model_copy(update={"sentiment": SentimentLabelerConfig(), "quality": QualityLabelerConfig(enabled=False)})
        heads = fit_heads(only_topic, embedder)
        seed = load_seed(cfg.topic.seed)
        held["topic"] = [r for r in read_seed_rows(cfg.topic.seed)[0] if r.position not in set(seed.positions)]
    if not args.skip_throughput:
        texts = [r.text for r in held["topic"]]
        best = embed_batch_sizes(texts[: args.tune_rows], [int(b) for b in args.batch_sizes.split(",")])
        print(f"\nafter batch-size sweep: {load_average()}")
        del embedder  # the driver's copy of the model is not needed while the actors run
        ray_heads = {"topic": heads["topic"]}
        if "quality" in args.throughput_heads.split(","):
            only_quality = cfg.model_copy(update={"topic": TopicLabelerConfig(enabled=False), "sentiment": SentimentLabelerConfig()})
            ray_heads["quality"] = fit_heads(only_quality, Embedder(num_threads=torch_threads))["quality"]
        ray_throughput((texts * 4)[: args.throughput_rows], ray_heads, best, [(1, 1.0), (2, 1.0), (1, 2.0)],
                       args.ray_batch_size, kind="text" if "quality" in ray_heads else "news")
        print(f"\nend: {load_average()}")


if __name__ == "__main__":
    main()
