"""Derive the quality labeler's seed set from gold web pages; held-out pages go to a separate file.

    .venv/bin/python tools/make_quality_seed.py            # writes the two files below
    .venv/bin/python tools/make_quality_seed.py --check    # exit 1 if the shipped files differ

Writes sft_ray/demo/data/web_quality_seed.jsonl (pages used for fitting: the default
`label.quality.seed`) and web_quality_heldout.jsonl (the other pages: tests and
benchmarks/label_quality.py), one JSON object a line: {text, label: good|bad, page, corpus}:
main-content ("good") vs boilerplate ("bad") text blocks of real web pages with gold extraction
annotations ($SFT_RAY_CORPORA/web, default /work/shared/corpora/web).

Why blocks of the page, not the gold snippets themselves: trafilatura's snippets are often cut
mid-word ("cination reduces hospitalizations ..."), and a labeler scores whole documents, so each
seed row is the browser-style text line(s) the gold marks, as a page shows them.

Gold (the same two corpora and line splitting as benchmarks/extraction_quality.py, from
tools/web_gold.py):
- trafilatura_pages/annotations.jsonl (45 pages, 7 languages): the source page's innerText line
  holding a `with` snippet is good, one holding a `without` snippet is bad (a line holding both,
  or none, is left out; a snippet no line holds, e.g. split over lines, is used as it is).
- readability_test_pages/<name> (26 pages): expected.html's lines are good; source.html's lines
  that are not in the gold text and share no 8-word run (12 characters for CJK) with it are bad
  (gold text = expected.html + expected-metadata.json title/byline/excerpt). Runs of consecutive
  lines of one class are joined (newline) into blocks of up to MAX_BLOCK_CHARS, so a menu becomes
  one block of its items, as an extractor that keeps navigation would emit it.
At most PER_PAGE blocks per class and page, evenly spread, so long pages do not dominate.

Split by page, never by block: a page is held out when sha1("<corpus>/<name>") mod 3 == 0 (about
a third of each corpus), so no page has blocks on both sides.

Sources and licences: adbar/trafilatura tests/eval @ e90b0ef and mozilla/readability
test/test-pages @ ab4027a, both Apache-2.0 repositories; page text (c) its publishers, shipped as
short excerpts for testing and the demo (sft_ray/demo/data/NOTICE.md).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tools.web_gold import WEB, norm, overlaps, page_html, spread, text_lines

DATA = Path(__file__).resolve().parents[1] / "sft_ray" / "demo" / "data"
SEED_FILE, HELDOUT_FILE = DATA / "web_quality_seed.jsonl", DATA / "web_quality_heldout.jsonl"
MAX_BLOCK_CHARS = 600  # ~130 words: a few paragraphs of article or a whole menu, well inside MiniLM's 256 word pieces
PER_PAGE = 12
GOOD, BAD = "good", "bad"


def held_out(corpus: str, name: str) -> bool:
    """The page-level split (stable across runs and machines)."""
    return int(hashlib.sha1(f"{corpus}/{name}".encode()).hexdigest(), 16) % 3 == 0


def blocks(lines: list[str], max_chars: int = MAX_BLOCK_CHARS) -> list[str]:
    """Consecutive lines joined into blocks of at most max_chars (a longer line is a block of its own)."""
    out: list[str] = []
    cur: list[str] = []
    for line in lines:
        if cur and len("\n".join(cur + [line])) > max_chars:
            out.append("\n".join(cur))
            cur = []
        cur.append(line)
    if cur:
        out.append("\n".join(cur))
    return out


def trafilatura_page(annotation: dict) -> dict[str, list[str]]:
    """good/bad blocks of one annotated page: the lines holding its `with` / `without` snippets."""
    lines = text_lines(page_html(WEB / "trafilatura_pages" / annotation["file"]))
    found: dict[str, list[str]] = {GOOD: [], BAD: []}
    for label, key in ((GOOD, "with"), (BAD, "without")):
        for snippet in map(norm, annotation[key]):
            holding = [line for line in lines if snippet in line]
            found[label].append(min(holding, key=len) if holding else snippet)
    both = set(found[GOOD]) & set(found[BAD])
    return {label: spread([b for b in found[label] if b not in both], PER_PAGE) for label in (GOOD, BAD)}


def readability_page(page_dir: Path) -> dict[str, list[str]]:
    """good blocks from expected.html, bad blocks from runs of source.html lines outside the gold text."""
    expected = text_lines((page_dir / "expected.html").read_text("utf-8"))
    meta_path = page_dir / "expected-metadata.json"
    meta = json.loads(meta_path.read_text("utf-8")) if meta_path.exists() else {}
    gold = "\n".join(expected + [norm(str(meta.get(k) or "")) for k in ("title", "byline", "excerpt")])
    runs: list[list[str]] = [[]]
    for line in text_lines(page_html(page_dir / "source.html")):
        if line in gold or overlaps(line, gold):
            runs.append([])  # main content (or part of it) ends a run of boilerplate
        elif any(c.isalnum() for c in line):
            runs[-1].append(line)
    bad = [b for run in runs for b in blocks(run)]
    return {GOOD: spread(blocks(expected), PER_PAGE), BAD: spread(bad, PER_PAGE)}


def pages() -> list[tuple[str, str, dict[str, list[str]]]]:
    """(corpus, page name, {good: blocks, bad: blocks}) for every gold page, in a fixed order."""
    out = []
    for line in (WEB / "trafilatura_pages" / "annotations.jsonl").read_text("utf-8").splitlines():
        a = json.loads(line)
        out.append(("trafilatura", Path(a["file"]).stem, trafilatura_page(a)))
    for d in sorted(p for p in (WEB / "readability_test_pages").iterdir() if p.is_dir()):
        out.append(("readability", d.name, readability_page(d)))
    return out


def rows(derived) -> tuple[list[dict], list[dict]]:
    """(seed rows, held-out rows): every block of a page lands on its page's side."""
    seed, held = [], []
    for corpus, name, by_label in derived:
        side = held if held_out(corpus, name) else seed
        for label in (GOOD, BAD):
            side += [{"text": t, "label": label, "page": name, "corpus": corpus} for t in by_label[label]]
    return seed, held


def dumps(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="only compare with the shipped files")
    args = ap.parse_args(argv)
    seed, held = rows(pages())
    for path, rs in ((SEED_FILE, seed), (HELDOUT_FILE, held)):
        text = dumps(rs)
        per = {lab: sum(r["label"] == lab for r in rs) for lab in (GOOD, BAD)}
        n_pages = len({(r["corpus"], r["page"]) for r in rs})
        if args.check:
            same = path.exists() and path.read_text("utf-8") == text
            print(f"{path.name}: {'up to date' if same else 'DIFFERS'}")
            if not same:
                return 1
        else:
            path.write_text(text, "utf-8")
            print(f"{path}: {len(rs)} rows ({per}) from {n_pages} pages, {len(text.encode()) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
