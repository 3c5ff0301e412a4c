"""Gold web pages with main-content and boilerplate snippets, read the way a browser shows them.

Shared by benchmarks/extraction_quality.py (extractors scored on the snippets) and
tools/make_quality_seed.py (the quality labeler's seed blocks). Text is compared after
normalisation (`norm`: NFC, zero-width characters removed, whitespace collapsed; case-sensitive).

Gold
- $SFT_RAY_CORPORA/web/trafilatura_pages: trafilatura's own evaluation set (45 pages, 7
  languages); `annotations.jsonl` gives per page hand-picked `with` and `without` snippets.
- $SFT_RAY_CORPORA/web/readability_test_pages: Mozilla Readability's test pages (26), each a
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

import json
import re
import sys
import unicodedata
from pathlib import Path

from sft_ray.ingest.charset import Decoded, decode_html
from tools import CORPORA

WEB = CORPORA / "web"
MAX_SNIPPETS = 20

_ZERO_WIDTH = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u00ad"))
_WS = re.compile(r"\s+")
_CJK = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af]")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")
_BLOCK = set(
    "address article aside blockquote br caption dd details div dl dt fieldset figcaption figure footer form "
    "h1 h2 h3 h4 h5 h6 header hr li main nav ol p pre section summary table tbody td tfoot th thead tr ul".split()
)
_SKIP = set("script style noscript template svg math head title iframe object select option textarea".split())


def page_html(path: Path) -> str:
    """A page's bytes decoded as the pipeline decodes them (sft_ray.ingest.charset.decode_html)."""
    decoded = decode_html(path.read_bytes())
    if not isinstance(decoded, Decoded):
        raise ValueError(f"{path}: {decoded}")
    return decoded.text


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


def spread(items: list[str], k: int = MAX_SNIPPETS) -> list[str]:
    """At most k distinct items, evenly spaced through the list (so long pages do not dominate)."""
    items = list(dict.fromkeys(items))
    if len(items) <= k:
        return items
    return [items[round(i * (len(items) - 1) / (k - 1))] for i in range(k)]


def _min_len(s: str) -> int:
    return 15 if len(_CJK.findall(s)) > len(s) / 3 else 30


def overlaps(line: str, gold: str) -> bool:
    """Whether the line shares an 8-word run (12-character run for CJK) with the gold text."""
    if len(_CJK.findall(line)) > len(line) / 3:
        return any(line[i : i + 12] in gold for i in range(max(1, len(line) - 11)))
    words = line.split()
    return any(" ".join(words[i : i + 8]) in gold for i in range(max(1, len(words) - 7)))


def readability_gold(page_dir: Path) -> tuple[list[str], list[str]]:
    """(with, without) snippets of one Readability test page (see the module docstring)."""
    expected = text_lines((page_dir / "expected.html").read_text("utf-8"))
    meta_path = page_dir / "expected-metadata.json"
    meta = json.loads(meta_path.read_text("utf-8")) if meta_path.exists() else {}
    extra = [norm(str(meta.get(k) or "")) for k in ("title", "byline", "excerpt")]
    gold = "\n".join(expected + extra)
    with_ = [s for line in expected for s in map(norm, _SENTENCE_END.split(line)) if len(s) >= _min_len(s)]
    without = [
        line for line in text_lines(page_html(page_dir / "source.html"))
        if _min_len(line) <= len(line) <= 200 and line not in gold and not overlaps(line, gold)
    ]
    return spread(with_), spread(without)


def load_pages() -> list[dict]:
    """Every gold page: {corpus, name, path, url, with, without}, trafilatura's then Readability's."""
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
