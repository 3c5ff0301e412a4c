"""What tracing normalisation costs, and proof that it changes no output: this tree's `clean_text`
(which also records which steps changed a text, clean/changes.py) against an older tree's, on the
same texts, in one process.

    git archive 5ae9f8d | tar -x -C /tmp/base5ae
    PYTHONPATH=$PWD .venv/bin/python benchmarks/normalize_trace.py --baseline /tmp/base5ae

Texts: every field of the shipped AG News sample (sft_ray/demo/data), the raw HTML of the web pages
in $SFT_RAY_CORPORA/web when present (long texts with entities and markup), and 5,000 copies of
the first texts with three faults each inserted at random (CR, CRLF, U+2028, NEL, ZWSP, BEL, BOM,
mojibake, entities, bidi marks, C1 controls, tag characters): the inputs that exercise every step.
Prints texts compared, how many outputs differ (must be 0), and CPU seconds, best of --repeats.
"""

from __future__ import annotations

import argparse
import csv
import glob
import importlib.util
import os
import random
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPORA = Path(os.environ.get("SFT_RAY_CORPORA", "/work/shared/corpora"))
FAULTS = ["\r", "\r\n", "\u2028", "\x85", "\u200b", "\x07", "\ufeff", "\u00c3\u00a9", "&amp;", "\u200e", "\x9d", "\U000e0020"]


def texts(seed: int = 0) -> dict[str, list[str]]:
    ag = [field for row in csv.reader(open(ROOT / "sft_ray/demo/data/ag_news_test_part.csv", encoding="utf-8")) for field in row[1:]]
    web = [open(p, encoding="utf-8", errors="replace").read() for p in sorted(glob.glob(str(CORPORA / "web/**/*.html"), recursive=True))[:200]]
    rng = random.Random(seed)
    faulty = []
    for t in ag[:5000]:
        chars = list(t[:300])
        for _ in range(3):
            chars.insert(rng.randrange(len(chars) + 1), rng.choice(FAULTS))
        faulty.append("".join(chars))
    return {"ag_news": ag, "web_html": web, "faults": faulty}


def _module(tree: Path):
    spec = importlib.util.spec_from_file_location("base_normalize", tree / "sft_ray/clean/normalize.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--baseline", required=True, help="source tree of the code to compare against (git archive)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    from sft_ray.clean import normalize as new
    from sft_ray.config import CleanConfig

    old = _module(Path(args.baseline))
    cfg = CleanConfig()
    print("| texts | n | outputs differing | CPU s before | CPU s after | after / before |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, group in texts().items():
        if not group:
            print(f"| {name} | 0 | skipped (not found) | | | |")
            continue
        kind = "web" if name == "web_html" else "text"
        differ = sum(old.clean_text(t, kind, cfg) != new.clean_text(t, kind, cfg) for t in group)
        best = {"old": float("inf"), "new": float("inf")}
        for _ in range(args.repeats):  # interleaved, so a load change hits both
            for key, mod in (("old", old), ("new", new)):
                t0 = time.process_time()
                for t in group:
                    mod.clean_text(t, kind, cfg)
                best[key] = min(best[key], time.process_time() - t0)
        print(f"| {name} | {len(group):,} | {differ} | {best['old']:.3f} | {best['new']:.3f} | {best['new'] / best['old']:.2f} |")
    # The whole first link on record blocks: the step masks, the sampled diffs and the trace columns too.
    from sft_ray import schema

    ag = texts()["ag_news"]
    blocks = [schema.records_from_rows([{"id": f"ag-{i}", "source": "ag", "kind": "news", "text": t}
                                        for i, t in enumerate(ag[k:k + 1000], start=k)]) for k in range(0, len(ag), 1000)]
    best = {"old": float("inf"), "new": float("inf")}
    for _ in range(args.repeats):
        for key, mod in (("old", old), ("new", new)):
            t0 = time.process_time()
            for b in blocks:
                mod.normalize_batch(b, cfg)
            best[key] = min(best[key], time.process_time() - t0)
    print(f"| normalize_batch, AG News in blocks of 1,000 rows | {len(ag):,} | (trace columns added) | {best['old']:.3f} | "
          f"{best['new']:.3f} | {best['new'] / best['old']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
