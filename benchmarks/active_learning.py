"""Active-learning gain of `sft-ray label export` on AG News: does asking people about the rows the
topic head is least sure of beat asking about random rows?

The gold AG News labels play the annotator. Per repetition (a different random split each): 1,000
held-out test rows, a pool of the other 2,800 (labels hidden), a random initial seed of `--initial`
labelled rows; then `--budget` (200) more labels chosen by each strategy, the head refitted on
seed + new labels exactly as the build does (sft_ray/label/classifier.py fit_head, calibrated,
MiniLM last-layer features as label.topic), and its accuracy on the test rows measured; also the
classification targets the pool would get (the new human labels, plus the refitted head's labels at
>= --min-confidence for the other rows, as format/labels.py does): how many, and what share right:

    random              --budget rows drawn at random from the pool
    least confidence    the lowest top probability, one batch: what `sft-ray label export` picks
                        (curated/ keeps the top probability only; sft_ray/label/studio.py)
    smallest margin     the smallest p1 - p2, one batch (Settles 2009, section 3.1)
    margin, 4 rounds    smallest margin, refitting after every quarter of the budget

    python benchmarks/active_learning.py                      # 5 repetitions -> benchmarks/results/active_learning.{md,json}
    python benchmarks/active_learning.py --initial 40 --reps 3

Embeddings of the 3,800 rows are computed once (CPU, a few minutes) and cached in the temp folder.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import table  # noqa: E402
from sft_ray.label.classifier import fit_head  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AG = REPO / "sft_ray" / "demo" / "data" / "ag_news_test_part.csv"
NAMES = ["World", "Sports", "Business", "Sci/Tech"]
RESULTS = REPO / "benchmarks" / "results"


def load() -> tuple[list[str], np.ndarray]:
    rows = list(csv.reader(AG.open(encoding="utf-8")))
    return [f"{t}\n{d}" for _, t, d in rows], np.array([int(c) - 1 for c, _, _ in rows])


def embeddings(texts: list[str], cache: Path) -> np.ndarray:
    key = hashlib.sha1("\x00".join(texts).encode()).hexdigest()[:12]
    path = cache / f"ag_news_minilm_{key}.npy"
    if path.exists():
        return np.load(path)
    from sft_ray.label.embed import Embedder

    t0 = time.time()
    x = Embedder().encode(texts, 32)
    print(f"embedded {len(texts)} rows in {time.time() - t0:.0f}s", file=sys.stderr)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def fit(x, y, idx, folds):
    return fit_head(x[idx], y[idx], NAMES, folds=folds, seed=0)


def pick(strategy: str, x, y, labelled, pool, budget, rng, folds):
    labelled, pool = list(labelled), np.array(pool)
    rounds = 4 if strategy == "margin, 4 rounds" else 1
    for r in range(rounds):
        n = budget // rounds + (budget % rounds if r == rounds - 1 else 0)
        if strategy == "random":
            chosen = rng.choice(len(pool), size=n, replace=False)
        else:
            p = np.sort(fit(x, y, labelled, folds).predict_proba(x[pool]), axis=1)
            score = p[:, -1] if strategy == "least confidence" else p[:, -1] - p[:, -2]
            chosen = np.argsort(score, kind="stable")[:n]
        labelled += pool[chosen].tolist()
        pool = np.delete(pool, chosen)
    return labelled


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--initial", type=int, default=100, help="random labelled rows before any choice (default 100)")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--folds", type=int, default=5, help="calibration folds of each fit (as label.topic.seed)")
    ap.add_argument("--min-confidence", type=float, default=0.5, help="format.min_label_confidence.classification (default 0.5)")
    ap.add_argument("--out", default=str(RESULTS / "active_learning"))
    args = ap.parse_args()
    texts, y = load()
    x = embeddings(texts, Path(tempfile.gettempdir()) / "sft_ray_bench")
    strategies = ["random", "least confidence", "smallest margin", "margin, 4 rounds"]
    acc: dict[str, list[float]] = {"seed only": [], **{s: [] for s in strategies}}
    # The SFT data of the pool after the round: human labels on the chosen rows, the refitted head's
    # label at >= --min-confidence on the others (format/labels.py): how many targets, how many right.
    tgt_n: dict[str, list[int]] = {k: [] for k in acc}
    tgt_ok: dict[str, list[float]] = {k: [] for k in acc}
    for rep in range(args.reps):
        rng = np.random.default_rng(rep)
        order = rng.permutation(len(y))
        test, rest = order[:1000], order[1000:]
        labelled, pool = rest[: args.initial].tolist(), rest[args.initial:]
        for s in ["seed only", *strategies]:
            chosen = labelled if s == "seed only" else pick(s, x, y, labelled, pool, args.budget, np.random.default_rng(1000 + rep), args.folds)
            head = fit(x, y, chosen, args.folds)
            acc[s].append(float((head.predict_proba(x[test]).argmax(1) == y[test]).mean()))
            human = np.setdiff1d(chosen, labelled)
            others = np.setdiff1d(pool, human)
            p = head.predict_proba(x[others])
            sure = p.max(1) >= args.min_confidence
            right = int((p.argmax(1)[sure] == y[others][sure]).sum()) + len(human)
            tgt_n[s].append(int(sure.sum()) + len(human))
            tgt_ok[s].append(right / tgt_n[s][-1])
        print(f"rep {rep}: " + ", ".join(f"{k} {v[-1]:.3f}" for k, v in acc.items()), file=sys.stderr)
    base = np.mean(acc["random"])
    rows = [[k, args.initial + (0 if k == "seed only" else args.budget), float(np.mean(v)), float(np.std(v)),
             float(np.mean(v) - base) if k != "seed only" else "", float(min(v)), float(max(v)),
             int(np.mean(tgt_n[k])), float(np.mean(tgt_ok[k]))] for k, v in acc.items()]
    md = (f"AG News (sft_ray/demo/data/ag_news_test_part.csv), MiniLM + calibrated logistic head (label.topic), "
          f"{args.initial} random seed rows + {args.budget} labels by each strategy; head accuracy on 1,000 held-out rows, "
          f"and the pool's classification targets (human labels + the refitted head's labels at >= {args.min_confidence}): "
          f"how many and the share right; {args.reps} repetitions (mean, std, min, max of accuracy):\n\n"
          + table(["labels chosen by", "labelled rows", "accuracy", "std", "vs random", "min", "max", "pool targets", "targets right"], rows))
    print(md)
    Path(args.out + ".md").write_text(md + "\n\ncommand: python benchmarks/active_learning.py " + " ".join(sys.argv[1:]) + "\n")
    Path(args.out + ".json").write_text(json.dumps({"args": vars(args), "accuracy": acc, "pool_targets": tgt_n, "targets_right": tgt_ok}, indent=1))


if __name__ == "__main__":
    main()
