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

Gold
- /work/shared/corpora/web/trafilatura_pages: trafilatura's own evaluation set (45 pages, 7
  languages); `annotations.jsonl` gives per page hand-picked `with` and `without` snippets.
- /work/shared/corpora/web/readability_test_pages: Mozilla Readability's test pages (26), each a
  `source.html` and the `expected.html` article Readability extracts. Snippets are derived:
  * text lines are taken the way a browser's innerText makes them: split at block elements
    (p, div, li, h1-h6, td, br, ...), skipping script/style/noscript/template/svg/head and hidden
    elements (`hidden`, `aria-hidden=true`, inline display:none / visibility:hidden);
  * `with`: sentences (split after . ! ? and their CJK forms) of expected.html's lines, at least
    30 characters (15 for CJK text);
  * `without`: lines of source.html's body of 30-200 characters (15-200 for CJK) that are not
    in the gold text and share no 8-word run (12-character run for CJK) with it, where the gold
    text is expected.html's text plus expected-metadata.json's title, byline and excerpt
    (Readability moves those out of the article; extractors may rightly keep them). That leaves
    navigation, footers, related-article teasers, cookie and share lines.
  At most 20 of each per page, evenly spaced through the page, so long pages do not dominate.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sft_ray.clean.extract import Extracted, extract  # noqa: E402
from sft_ray.config import ExtractConfig  # noqa: E402
from sft_ray.ingest.charset import Decoded, decode_html  # noqa: E402

WEB = Path(os.environ.get("SFT_RAY_CORPORA", "/work/shared/corpora")) / "web"
TARGET_WITH, TARGET_WITHOUT = 0.90, 0.85
MAX_SNIPPETS = 20

# name -> (ExtractConfig fields, favor_recall)
VARIANTS = {
    "trafilatura": ({"extractor": "trafilatura"}, False),
    "trafilatura_precision": ({"extractor": "trafilatura", "favor_precision": True}, False),
    "trafilatura_recall": ({"extractor": "trafilatura"}, True),
    "trafilatura_no_tables": ({"extractor": "trafilatura", "include_tables": False}, False),
    "resiliparse": ({"extractor": "resiliparse"}, False),
}

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_WS = re.compile(r"\s+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
_BLOCK = set(
    "address article aside blockquote br caption dd details div dl dt fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table tbody td tfoot th thead tr ul".split()
)
_SKIP = set("script style noscript template svg math head title iframe object select option textarea".split())


def norm(s: str) -> str:
    return _WS.sub(" ", unicodedata.normalize("NFC", s).translate(_ZERO_WIDTH)).strip()


def _hidden(el) -> bool:
    style = (el.get("style") or "").replace(" ", "").lower()
    return el.get("hidden") is not None or el.get("aria-hidden") == "true" or "display:none" in style or "visibility:hidden" in style


def text_lines(html: str) -> list[str]:
    """innerText-like lines of a page (see the module docstring)."""
    import lxml.html

    root = lxml.html.document_fromstring(html.encode("utf-8"), parser=lxml.html.HTMLParser(encoding="utf-8"))
    out: list[str] = []
    cur: list[str] = []

    def flush():
        line = norm("".join(cur))
        cur.clear()
        if line:
            out.append(line)

    def walk(el):
        tag = el.tag.lower() if isinstance(el.tag, str) else None
        if tag is not None and tag not in _SKIP and not _hidden(el):
            block = tag in _BLOCK
            if block:
                flush()
            cur.append(el.text or "")
            for child in el:
                walk(child)
            if block:
                flush()
        cur.append(el.tail or "")  # the tail belongs to the parent, shown even when `el` is not

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 20_000))
    body = root.find("body")
    walk(body if body is not None else root)
    flush()
    return out


def _spread(items: list[str], k: int = MAX_SNIPPETS) -> list[str]:
    items = list(dict.fromkeys(items))
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def _min_len(s: str) -> int:
    return 15 if len(_CJK.findall(s)) > len(s) / 3 else 30


def _overlaps(line: str, gold: str) -> bool:
    if len(_CJK.findall(line)) > len(line) / 3:
        return any(line[i : i + 12] in gold for i in range(0, max(1, len(line) - 11)))
    words = line.split()
    return any(" ".join(words[i : i + 8]) in gold for i in range(0, max(1, len(words) - 7)))


def readability_gold(page_dir: Path) -> tuple[list[str], list[str]]:
    expected = text_lines((page_dir / "expected.html").read_text("utf-8"))
    meta_path = page_dir / "expected-metadata.json"
    meta = json.loads(meta_path.read_text("utf-8")) if meta_path.exists() else {}
    extra = [norm(str(meta.get(k) or "")) for k in ("title", "byline", "excerpt")]
    gold = "\n".join(expected + extra)
    with_ = [s for line in expected for s in map(norm, _SENTENCE_END.split(line)) if len(s) >= _min_len(s)]
    source = decode_html((page_dir / "source.html").read_bytes())
    assert isinstance(source, Decoded), f"{page_dir}: {source}"
    without = [
        line for line in text_lines(source.text)
        if _min_len(line) <= len(line) <= 200 and line not in gold and not _overlaps(line, gold)
    ]
    return _spread(with_), _spread(without)


def load_pages() -> list[dict]:
    pages = []
    tp = WEB / "trafilatura_pages"
    for line in (tp / "annotations.jsonl").read_text("utf-8").splitlines():
        a = json.loads(line)
        url = a["url"] if a["url"].startswith("http") else None
        pages.append({"corpus": "trafilatura", "name": Path(a["file"]).stem, "path": tp / a["file"], "url": url,
                      "with": [norm(s) for s in a["with"]], "without": [norm(s) for s in a["without"]]})
    for d in sorted(p for p in (WEB / "readability_test_pages").iterdir() if p.is_dir()):
        with_, without = readability_gold(d)
        pages.append({"corpus": "readability", "name": d.name, "path": d / "source.html", "url": None,
                      "with": with_, "without": without})
    return pages


def score(page: dict, name: str) -> dict:
    fields, favor_recall = VARIANTS[name]
    cfg = ExtractConfig(**fields)
    decoded = decode_html(page["path"].read_bytes())
    assert isinstance(decoded, Decoded), f"{page['path']}: {decoded}"
    t0 = time.process_time()
    out = extract(decoded.text, page["url"], cfg, favor_recall=favor_recall)
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
