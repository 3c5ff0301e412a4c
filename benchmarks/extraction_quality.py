"""Main-content extraction quality: trafilatura vs resiliparse on gold pages, side by side.

    .venv/bin/python benchmarks/extraction_quality.py [--variants trafilatura,resiliparse] [--per-page]

Every page goes through the pipeline's own path: bytes -> sft_ray.ingest.charset.decode_html ->
sft_ray.clean.extract.extract. A page scores two shares, compared after normalisation (NFC,
zero-width characters removed, whitespace collapsed; case-sensitive), on the extracted `text`
(what goes into the dataset; the title is a separate column):

  with     share of gold snippets of main content found in the text      (target >= 0.90)
  without  share of gold snippets of boilerplate absent from the text    (target >= 0.85)

plus CPU milliseconds per page (process time, so other jobs on the machine do not inflate it).
Overall = mean over pages (each page weighs the same), per corpus and both corpora together.

Gold: trafilatura's evaluation pages and Mozilla Readability's test pages, with snippets as
tools/web_gold.py describes and derives them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sft_ray.clean.extract import Extracted, extract
from sft_ray.config import ExtractConfig
from tools.web_gold import load_pages, norm, page_html

TARGET_WITH, TARGET_WITHOUT = 0.90, 0.85

# name -> (ExtractConfig fields, favor_recall)
VARIANTS = {
    "trafilatura": ({"extractor": "trafilatura"}, False),
    "trafilatura_precision": ({"extractor": "trafilatura", "favor_precision": True}, False),
    "trafilatura_recall": ({"extractor": "trafilatura"}, True),
    "trafilatura_no_tables": ({"extractor": "trafilatura", "include_tables": False}, False),
    "resiliparse": ({"extractor": "resiliparse"}, False),
}


def score(page: dict, name: str) -> dict:
    fields, favor_recall = VARIANTS[name]
    cfg = ExtractConfig(**fields)
    html = page_html(page["path"])
    t0 = time.process_time()
    out = extract(html, page["url"], cfg, favor_recall=favor_recall)
    cpu_ms = (time.process_time() - t0) * 1000
    text = norm(out.text) if isinstance(out, Extracted) else ""
    w = [s in text for s in page["with"]]
    wo = [s not in text for s in page["without"]]
    return {
        "with": sum(w) / len(w) if w else None,
        "without": sum(wo) / len(wo) if wo else None,
        "ms": cpu_ms,
        "reject": None if isinstance(out, Extracted) else out,
    }


def _mean(xs) -> float | None:
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def _f(x, digits=2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--variants", default=",".join(VARIANTS), help=f"comma list of {sorted(VARIANTS)}")
    ap.add_argument("--per-page", action="store_true", help="print the per-page table")
    ap.add_argument("--limit", type=int, default=None, help="pages per corpus (smoke runs)")
    args = ap.parse_args(argv)
    names = [v for v in args.variants.split(",") if v]
    pages = load_pages()
    if args.limit:
        pages = [p for c in ("trafilatura", "readability") for p in [q for q in pages if q["corpus"] == c][: args.limit]]
    warm = pages[0]
    for n in names:  # first call pays lazy imports (trafilatura loads htmldate, justext, ...)
        score(warm, n)
    results = {n: [score(p, n) for p in pages] for n in names}

    side = [n for n in ("trafilatura", "resiliparse") if n in names] or names[:2]
    if args.per_page:
        print("\n### Per page (with = main-content snippets found, without = boilerplate snippets absent)\n")
        print("| corpus | page | #with | #without | " + " | ".join(f"{n} with | {n} without | {n} ms" for n in side) + " |")
        print("|---|---|--:|--:|" + "--:|--:|--:|" * len(side))
        for i, p in enumerate(pages):
            cells = []
            for n in side:
                r = results[n][i]
                cells += [_f(r["with"]) + (f" ({r['reject']})" if r["reject"] else ""), _f(r["without"]), _f(r["ms"], 0)]
            print(f"| {p['corpus']} | {p['name'][:40]} | {len(p['with'])} | {len(p['without'])} | " + " | ".join(cells) + " |")

    summary: dict = {}
    print(f"\n### Overall (mean over pages; targets: with >= {TARGET_WITH}, without >= {TARGET_WITHOUT})\n")
    print("| extractor | corpus | pages | with | without | CPU ms/page | rejected | meets targets |")
    print("|---|---|--:|--:|--:|--:|--:|---|")
    for n in names:
        for corpus in ("trafilatura", "readability", "all"):
            idx = [i for i, p in enumerate(pages) if corpus in ("all", p["corpus"])]
            rs = [results[n][i] for i in idx]
            w, wo, ms = _mean(r["with"] for r in rs), _mean(r["without"] for r in rs), _mean(r["ms"] for r in rs)
            ok = w is not None and wo is not None and w >= TARGET_WITH and wo >= TARGET_WITHOUT
            summary[(n, corpus)] = {"with": w, "without": wo, "ms": ms}
            print(f"| {n} | {corpus} | {len(idx)} | {_f(w, 3)} | {_f(wo, 3)} | {_f(ms, 1)} | "
                  f"{sum(1 for r in rs if r['reject'])} | {'yes' if ok else 'no'} |")
    return summary


if __name__ == "__main__":
    main()
