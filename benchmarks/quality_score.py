"""The quality labeler on held-out gold pages, side by side with the clean stage's heuristics
(the `quality` part of benchmarks/label_quality.py; run it from there, not on its own).

    .venv/bin/python benchmarks/label_quality.py --labelers quality --skip-throughput \
        --json benchmarks/results/label_quality_score.json | tee benchmarks/results/label_quality_score.md

The head is fitted exactly as the build fits it (default `label.quality`: seed
sft_ray/demo/data/web_quality_seed.jsonl, 53 pages) and scored on pages it never saw
(web_quality_heldout.jsonl, 18 pages; tools/make_quality_seed.py splits by page). Gold:
good = main content, bad = boilerplate, from trafilatura's and Readability's annotations.

Evaluation sets, each scored by the head (`quality_score` >= min_quality = good) and by the peer
(tools/clean_heuristics.py: pass = good), on the same texts:
  blocks     the held-out seed-format rows (a paragraph or a few; a run of menu/footer lines)
  documents  per held-out page, its good blocks joined, and its bad blocks joined (36 texts)
  extracted  each held-out page through the pipeline's extractor (trafilatura): gold says all
             are articles, so the share judged good is the only number (no bad class)
  ag_news    AG News title + description (clean news items; why `news` is not a default kind)
Metrics: accuracy, ROC-AUC (Mann-Whitney; a pass/fail judge's AUC is (TPR + TNR) / 2), good kept
(recall of good), bad removed (share of bad judged bad), ECE of quality_score as P(good).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path

import numpy as np

from benchmarks.common import table
from sft_ray.config import CleanConfig, LabelConfig, QualityLabelerConfig, SeedConfig
from sft_ray.label.classifier import fit_head
from sft_ray.label.embed import Embedder
from sft_ray.label.metrics import expected_calibration_error, roc_auc
from sft_ray.label.seed import load_seed, read_seed_rows
from tools.clean_heuristics import judge, size_rules_off

THRESHOLDS = (0.3, 0.5, 0.7)
PEERS = {"heuristics (clean defaults)": CleanConfig(), "heuristics (size rules off)": size_rules_off()}


def heldout_path(spec: SeedConfig) -> str:
    return str(Path(spec.path).with_name("web_quality_heldout.jsonl"))


def scores(judged_good: np.ndarray, score: np.ndarray, good: np.ndarray) -> dict:
    """Accuracy, AUC, good kept, bad removed of one judge on one set (`good` may be all True)."""
    out = {"n": int(len(good)), "accuracy": float((judged_good == good).mean()), "auc": roc_auc(score, good),
           "good_kept": float(judged_good[good].mean()) if good.any() else float("nan"),
           "bad_removed": float((~judged_good[~good]).mean()) if (~good).any() else float("nan")}
    return out


def eval_sets(spec: SeedConfig, corpora: Path, ag_rows: int) -> dict[str, tuple[list[str], np.ndarray]]:
    """name -> (texts, gold is-good) for the sets in the module docstring."""
    held_spec = spec.model_copy(update={"path": heldout_path(spec), "max_rows": 10**6})
    rows, _ = read_seed_rows(held_spec, where="heldout")
    raw = [json.loads(line) for line in Path(held_spec.path).read_text("utf-8").splitlines() if line.strip()]
    page_of = {f"{held_spec.path}:{n}": (r["corpus"], r["page"]) for n, r in enumerate(raw, start=1)}
    sets = {"blocks": ([r.text for r in rows], np.array([r.label == "good" for r in rows]))}
    pages = list(dict.fromkeys(page_of[r.position] for r in rows))
    docs, gold = [], []
    for page in pages:
        for label in ("good", "bad"):
            texts = [r.text for r in rows if page_of[r.position] == page and r.label == label]
            if texts:
                docs.append("\n".join(texts))
                gold.append(label == "good")
    sets["documents"] = (docs, np.array(gold))
    sets["extracted"] = _extracted(pages, corpora / "web")
    ag_spec = LabelConfig().topic.seed.model_copy(update={"path": str(corpora / "news/ag_news/ag_news_test_part.csv"), "max_rows": ag_rows})
    ag = load_seed(ag_spec, where="ag_news").texts
    sets["ag_news"] = (ag, np.ones(len(ag), dtype=bool))
    return sets


def _extracted(pages: list[tuple[str, str]], web: Path) -> tuple[list[str], np.ndarray]:
    from sft_ray.clean.extract import Extracted, extract
    from sft_ray.ingest.charset import decode_html

    texts = []
    for corpus, name in pages:
        path = web / "trafilatura_pages" / "html" / f"{name}.html" if corpus == "trafilatura" else web / "readability_test_pages" / name / "source.html"
        out = extract(decode_html(path.read_bytes()).text, None, CleanConfig().extract)
        if isinstance(out, Extracted) and out.text:
            texts.append("\n".join(p for p in (out.title, out.text) if p))
    return texts, np.ones(len(texts), dtype=bool)


def run(lcfg: QualityLabelerConfig, embedder: Embedder, batch_size: int, corpora: Path, ag_rows: int = 400) -> dict:
    spec, layers = lcfg.seed, tuple(lcfg.feature_layers)
    t0 = time.time()
    seed = load_seed(spec, where="label.quality.seed")
    x_seed = embedder.encode(seed.texts, batch_size, layers=layers)
    head = fit_head(x_seed, seed.labels, seed.label_names, folds=spec.calibration_folds, seed=spec.sample_seed, layers=layers)
    fit_s = time.time() - t0
    sets = eval_sets(spec, corpora, ag_rows)
    seed_pages, held_pages = (len({(r["corpus"], r["page"]) for r in map(json.loads, Path(f).read_text("utf-8").splitlines())})
                              for f in (spec.path, heldout_path(spec)))
    result: dict = {"seed_rows": len(seed.texts), "seed_pages": seed_pages, "heldout_pages": held_pages,
                    "layers": list(layers), "min_quality": lcfg.min_quality,
                    "head": {k: head.info[k] for k in ("cv_accuracy", "l2", "temperature")}, "fit_s": round(fit_s, 1), "sets": {}}
    rows, x_blocks = [], None
    for name, (texts, good) in sets.items():
        x = embedder.encode(texts, batch_size, layers=layers)
        x_blocks = x if name == "blocks" else x_blocks
        _, p = head.predict(x, lcfg.good_label)
        res = {"quality head": {**scores(p >= lcfg.min_quality, p, good), "ece": expected_calibration_error(p, good),
                                **{f"good_kept@{t}": float((p[good] >= t).mean()) for t in THRESHOLDS},
                                **{f"bad_removed@{t}": float((p[~good] < t).mean()) if (~good).any() else float("nan") for t in THRESHOLDS}}}
        for peer, ccfg in PEERS.items():
            reasons = [judge(t, ccfg) for t in texts]
            ok = np.array([r is None for r in reasons])
            res[peer] = {**scores(ok, ok.astype(float), good), "reasons": dict(Counter(r for r in reasons if r).most_common(5))}
        result["sets"][name] = res
        for judge_name, m in res.items():
            rows.append([name, judge_name, m["n"], m["accuracy"], m["auc"], m["good_kept"], m["bad_removed"]])

    print(f"\n## quality: {len(seed.texts)} seed rows ({seed_pages} pages), scored on {held_pages} held-out pages\n")
    print(f"features: layers {list(layers)}; head l2={head.info['l2']}, T={head.info['temperature']}, seed "
          f"{head.info.get('cv_folds')}-fold CV accuracy {head.info.get('cv_accuracy')}; fit {fit_s:.1f} s; "
          f"min_quality {lcfg.min_quality}\n")
    print(table(["set", "judge", "texts", "accuracy", "ROC-AUC", "good kept", "bad removed"], rows))
    head_b, peer_b = result["sets"]["blocks"]["quality head"], result["sets"]["blocks"]["heuristics (clean defaults)"]
    head_d, peer_d = result["sets"]["documents"]["quality head"], result["sets"]["documents"]["heuristics (clean defaults)"]
    result["ratio"] = {"blocks_accuracy": head_b["accuracy"] / peer_b["accuracy"], "blocks_auc": head_b["auc"] / peer_b["auc"],
                       "documents_accuracy": head_d["accuracy"] / peer_d["accuracy"], "documents_auc": head_d["auc"] / peer_d["auc"]}
    print("\nhead / heuristics (clean defaults): " + ", ".join(f"{k} {v:.2f}x" for k, v in result["ratio"].items()))
    print(f"ECE of quality_score: blocks {head_b['ece']:.3f}, documents {head_d['ece']:.3f}")
    print("\nmin_quality: share of good kept / bad removed\n")
    print(table(["set", *[f"min_quality {t}" for t in THRESHOLDS]],
                [[name, *[f"{res['quality head'][f'good_kept@{t}']:.3f} / {res['quality head'][f'bad_removed@{t}']:.3f}" for t in THRESHOLDS]]
                 for name, res in result["sets"].items()]))
    print("\nmost frequent heuristic reasons (clean defaults): "
          + "; ".join(f"{name}: {res['heuristics (clean defaults)']['reasons']}" for name, res in result["sets"].items()))
    # Why layers [-3, -2, -1]: the same seed and blocks with the last layer alone (its block is the last 384 columns).
    dim = embedder.dim
    if len(layers) > 1 and layers[-1] == -1:
        last = fit_head(x_seed[:, -dim:], seed.labels, seed.label_names, folds=spec.calibration_folds, seed=spec.sample_seed)
        _, p = last.predict(x_blocks[:, -dim:], lcfg.good_label)
        good = sets["blocks"][1]
        result["last_layer_only_blocks"] = scores(p >= lcfg.min_quality, p, good)
        print(f"\nlast layer only (feature_layers [-1]) on blocks: accuracy {result['last_layer_only_blocks']['accuracy']:.3f}, "
              f"ROC-AUC {result['last_layer_only_blocks']['auc']:.3f}")
    return _finite(result)


def _finite(obj):
    """NaN (no bad texts in a set) -> None, so the JSON file is strict JSON."""
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    return None if isinstance(obj, float) and obj != obj else obj
