"""How right are the labelled SFT targets at the default thresholds? A build with half the gold labels hidden.

One `sft_ray` build (label stage on, default config otherwise) of
    AG News   the 3,800 rows shipped with the demo (sft_ray/demo/data/ag_news_test_part.csv), task classification,
              topic labeler with its default seed (1,000 rows of the same file: those rows are flagged and left
              out of the evaluation)
    rt-polarity  the first `--rt-rows` sentences of each polarity (tests/data/sentiment/rt-polarity/), task sentiment,
              sentiment labeler seeded with 1,000 rt-polarity rows (as jobs/configs/sentiment.yaml)
with `sources[].hide_labels` = `--hide` (0.5): the hidden rows' targets come from the labelers at
`format.min_label_confidence` (defaults: classification 0.5, sentiment 0.7), and the hidden gold says
how right they are. Per task it prints what the build's manifest says (`sft.label_eval`,
format/evaluate.py): threshold, coverage of the hidden rows, target accuracy against the hidden gold,
the head's cross-validated accuracy on its seed (the estimate one has without hidden gold), and the
expected noise rate of the task's examples; beside it, the noise measured directly by reading the
written SFT examples back (the model targets, seed rows included, against meta.hidden_label).

    python benchmarks/label_targets.py                 # -> benchmarks/results/label_targets.{md,json}
    python benchmarks/label_targets.py --hide 0.25 --rt-rows 500
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import load_average, table  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AG = REPO / "sft_ray" / "demo" / "data" / "ag_news_test_part.csv"
RT = REPO / "tests" / "data" / "sentiment" / "rt-polarity"
RESULTS = REPO / "benchmarks" / "results"
AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


def config(work: Path, hide: float, rt_rows: int) -> dict:
    for pol in ("pos", "neg"):  # the first rt_rows of each polarity, as their own files
        lines = (RT / f"rt-polarity.{pol}").read_text(encoding="utf-8").splitlines()[:rt_rows]
        (work / f"rt.{pol}").write_text("\n".join(lines) + "\n", encoding="utf-8")
    rt_seed = {"format": "lines", "path": {"positive": str(RT / "rt-polarity.pos"), "negative": str(RT / "rt-polarity.neg")}, "max_rows": 1000}
    return {
        "output": str(work / "out"),
        "overwrite": True,
        "sources": [
            {"name": "agnews", "kind": "news", "format": "csv", "path": str(AG), "fields": {"label": 0, "title": 1, "text": 2},
             "label_names": AG_LABELS, "hide_labels": hide, "langs": {"text": "en"}},
            {"name": "rt", "kind": "sentiment", "format": "lines", "path": {"positive": str(work / "rt.pos"), "negative": str(work / "rt.neg")},
             "hide_labels": hide, "langs": {"text": "en"}},
        ],
        "format": {"tasks": {"news": ["classification"], "sentiment": ["sentiment"]}, "count_tokens": False},
        "label": {"enabled": True, "sentiment": {"enabled": True, "action": "flag", "seed": rt_seed}},
    }


def measured_noise(out: Path) -> dict[str, dict]:
    """Per task: model targets, and how many differ from the record's hidden gold (read back from the output)."""
    import pyarrow.parquet as pq

    hidden = {r["id"]: json.loads(r["meta"]).get("hidden_label") for r in pq.read_table(out / "curated", columns=["id", "meta"]).to_pylist()}
    res: dict[str, dict] = {}
    for split in ("train", "validation"):
        for r in pq.read_table(out / "sft" / split, columns=["task", "messages", "source_id", "label_source"]).to_pylist():
            c = res.setdefault(r["task"], {"examples": 0, "model": 0, "model_wrong": 0})
            c["examples"] += 1
            if r["label_source"] == "model":
                c["model"] += 1
                c["model_wrong"] += r["messages"][-1]["content"] != hidden.get(r["source_id"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hide", type=float, default=0.5, help="share of gold labels hidden (sources[].hide_labels)")
    ap.add_argument("--rt-rows", type=int, default=1000, help="rt-polarity sentences per polarity")
    ap.add_argument("--work", type=Path, default=None, help="build output parent (default: a temp folder)")
    args = ap.parse_args()

    from sft_ray.build import build_sft_data
    from sft_ray.config import RunConfig
    from sft_ray.runtime import init_ray

    init_ray()  # a local Ray (RAY_ADDRESS unset), or the cluster RAY_ADDRESS names
    work = args.work or Path(tempfile.mkdtemp(prefix="label_targets_"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    m = build_sft_data(RunConfig.model_validate(config(work, args.hide, args.rt_rows))).manifest
    wall = round(time.time() - t0, 1)
    measured = measured_noise(work / "out")
    rows, curves = [], {}
    for task, ev in m["sft"]["label_eval"].items():
        h, noise, meas = ev["references"].get("hidden") or {}, ev["noise"], measured.get(task, {})
        at = h.get("at_threshold") or {}
        rows.append([task, ev["labeler"], ev["threshold"], h.get("rows", 0), h.get("seed_rows_left_out", 0), at.get("coverage"), at.get("accuracy"),
                     h.get("accuracy"), h.get("reliability", {}).get("ece"), ev["seed_cv_accuracy"], f"{noise['model_examples']:,} / {noise['examples']:,}",
                     noise["expected_noise_rate"], round(meas["model_wrong"] / meas["examples"], 4) if meas.get("examples") else None])
        curves[task] = [[p["threshold"], p["coverage"], p["accuracy"]] for p in h.get("curve", []) if p["threshold"] in (0.5, 0.6, 0.7, 0.8, 0.9)]
    header = ["task", "labeler", "threshold", "hidden rows scored", "seed rows left out", "coverage", "target accuracy",
              "accuracy (all)", "ECE", "seed CV accuracy", "model / all examples", "expected noise", "measured noise"]
    md = [f"# Label targets at the default thresholds (`python benchmarks/label_targets.py --hide {args.hide} --rt-rows {args.rt_rows}`)", "",
          f"AG News 3,800 rows and rt-polarity {2 * args.rt_rows:,} rows, {args.hide:.0%} of the gold labels hidden; one build, "
          f"{wall} s wall ({load_average()}). Coverage and target accuracy: the hidden, non-seed rows at or above the threshold "
          "(format/evaluate.py); expected noise = (1 - target accuracy) x model share of the task's examples; measured noise: the "
          "written model targets (seed rows included) against the hidden gold, over all the task's examples.", "",
          table(header, rows), "", "Coverage / accuracy of the hidden rows at other thresholds:", "",
          table(["task", "threshold", "coverage", "accuracy"], [[t, *p] for t, ps in curves.items() for p in ps])]
    text = "\n".join(md) + "\n"
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "label_targets.md").write_text(text, encoding="utf-8")
    (RESULTS / "label_targets.json").write_text(json.dumps({"args": vars(args) | {"work": None if args.work is None else str(args.work)}, "wall_s": wall, "label_eval": m["sft"]["label_eval"],
                                                            "label_sources": m["sft"]["label_sources"], "measured": measured}, indent=1, default=str))


if __name__ == "__main__":
    main()
