"""A web-like benchmark corpus for the clean filters, made from real text with seeded edits.

Real pages are few (71 HTML pages, a few hundred news/translation/QA documents), so documents are
made by taking one real base document and applying random, seeded edits of the kinds crawled pages
show, in proportions chosen so that every filter of the clean chain both keeps and rejects a real
share (the benchmark prints the per-reason counts to show it):

base documents (text only, never synthetic tokens: DataTrove's normaliser would collapse them)
  web       main text of /work/shared/corpora/web/{trafilatura_pages/html/*, readability_test_pages/*/source.html}
            extracted with trafilatura; English pages (by fastText lid.176) are the `web` family,
            the others (de, fr, es, pl, pt, it, zh, ja) join `other_lang`
  agnews    4..20 AG News descriptions of one class concatenated, one per line (English)
  wmt22     WMT22 ja-en documents (doc ids from ja-en.docs.tsv): English references joined, one
            segment per line; the Japanese sources as non-English documents
  xquad     XQuAD paragraphs (contexts) of one article: en, de, zh

edits (each applied with its own probability, several per document)
  drop / shuffle / duplicate paragraphs, splice paragraphs of a second document (possibly in
  another language), truncate (possibly mid-sentence), boilerplate lines ("Click here to
  subscribe", menus), cookie / privacy-policy lines, "enable JavaScript" lines, a repeated line,
  lorem ipsum, a line of code with a curly bracket, bullet lists, lines ending in an ellipsis,
  hashtags, number tables, messy whitespace (trailing spaces, tabs), paragraph breaks "\\n" or "\\n\\n".
  Base documents longer than 40 paragraphs (RFCs, a book chapter) contribute a random window of 40.

The corpus is written as `parts` jsonl files of `{"id", "text"}` (several files so that DataTrove's
tasks split the input) plus `corpus.json` (how it was made, sizes, edit counts). Same (n, seed) ->
byte-identical files; an existing complete corpus is reused.
"""

from __future__ import annotations

import csv
import glob
import html
import json
import random
import re
from collections import Counter, defaultdict
from functools import lru_cache
from pathlib import Path

from tools import CORPORA

VERSION = 2  # bump when the recipe changes: the cache key includes it

BOILERPLATE = [
    "Click here to subscribe", "Subscribe to our newsletter", "Share this article", "Share on Facebook",
    "Tweet", "Home", "News", "Contact us", "About us", "Read more", "Advertisement", "Skip to main content",
    "Sign in", "Log in to comment", "Related articles", "Most popular", "Back to top", "Print this page",
    "Follow us on Twitter", "Photo: Reuters", "All rights reserved.", "Loading...", "Next article »",
    "Sign up for our daily newsletter to get the latest headlines delivered to your inbox.",
    "Copyright 2023 The Associated Press. All rights reserved.",
    "This material may not be published, broadcast, rewritten or redistributed.",
]
POLICY = [
    "This website uses cookies to improve your experience. By continuing you agree to our cookie policy.",
    "By using this site you accept our Terms of Use and Privacy Policy.",
    "We use cookies to personalise content and ads and to analyse our traffic.",
]
JAVASCRIPT = [
    "Please enable JavaScript in your browser to view the comments on this article.",
    "This video requires JavaScript to be enabled in your web browser.",
    "You need to have JavaScript enabled to use this feature of the site.",
]
LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco."
)
CODE = [
    'var config = {"theme": "dark", "autoplay": true, "lang": "en"}; window.player.init(config);',
    "function track(event) { window.dataLayer.push({event: event, category: 'article'}); }",
    ".article-body p { margin: 0 0 1em; font-family: Georgia, serif; }",
]
HASHTAGS = ["#news", "#breaking", "#world", "#politics", "#tech", "#health", "#sport", "#travel", "#food", "#climate"]


# ----------------------------------------------------------------------------------- base texts
def web_pages() -> list[tuple[str, list[str]]]:
    """(page path, paragraphs of its trafilatura main text) of every shared gold web page."""
    import trafilatura

    paths = sorted(glob.glob(str(CORPORA / "web/trafilatura_pages/html/*"))) + sorted(
        glob.glob(str(CORPORA / "web/readability_test_pages/*/source.html"))
    )
    out = []
    for p in paths:
        text = trafilatura.extract(Path(p).read_bytes(), include_tables=True) or ""
        paras = [line for line in text.split("\n") if line.strip()]
        if len(paras) >= 2:
            out.append((f"web:{Path(p).parent.name if p.endswith('source.html') else Path(p).name}", paras))
    return out


def _agnews(rng: random.Random) -> list[tuple[str, list[str]]]:
    by_class: dict[str, list[str]] = defaultdict(list)
    with open(CORPORA / "news/ag_news/ag_news_test_part.csv", newline="", encoding="utf-8") as f:
        for label, _title, desc in csv.reader(f):
            desc = html.unescape(re.sub(r"#(\d+);", r"&#\1;", desc.replace("\\", " ")))
            by_class[label].append(" ".join(desc.split()))
    out = []
    for label, descs in sorted(by_class.items()):
        i = 0
        while i < len(descs):
            k = rng.randint(4, 20)
            out.append((f"agnews:{label}:{i}", descs[i : i + k]))
            i += k
    return out


def _wmt22() -> list[tuple[str, list[str]]]:
    en: dict[str, list[str]] = defaultdict(list)
    ja: dict[str, list[str]] = defaultdict(list)
    with open(CORPORA / "translation/wmt22_generaltest/generaltest2022.ja-en.docs.tsv", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            en[row["doc_id"]].append(row["ref_A_en"])
            ja[row["doc_id"]].append(row["src_ja"])
    return [(f"wmt22-en:{d}", segs) for d, segs in en.items()] + [(f"wmt22-ja:{d}", segs) for d, segs in ja.items()]


def _xquad() -> list[tuple[str, list[str]]]:
    out = []
    for lang in ("en", "de", "zh"):
        data = json.loads((CORPORA / f"qa/xquad/xquad.{lang}.json").read_text(encoding="utf-8"))["data"]
        for a, article in enumerate(data):
            out.append((f"xquad-{lang}:{a}", [p["context"] for p in article["paragraphs"]]))
    return out


@lru_cache(maxsize=1)
def base_documents() -> dict[str, list[tuple[str, list[str]]]]:
    """Base documents by family: English ones to edit, other languages to splice in or use whole
    (read once per process; callers copy before editing)."""
    from sft_ray.clean.langid import predict, top

    rng = random.Random(0)
    web = web_pages()
    web_lang = [top(s)[0] for s in predict([" ".join(paras) for _, paras in web])]
    wmt = _wmt22()
    xq = _xquad()
    return {
        "web": [d for d, lang in zip(web, web_lang) if lang == "en"],
        "agnews": _agnews(rng),
        "wmt22": [d for d in wmt if d[0].startswith("wmt22-en")],
        "xquad": [d for d in xq if d[0].startswith("xquad-en")],
        "other_lang": [d for d, lang in zip(web, web_lang) if lang != "en"]
        + [d for d in wmt if d[0].startswith("wmt22-ja")] + [d for d in xq if not d[0].startswith("xquad-en")],
    }


# ------------------------------------------------------------------------------------------ edits
FAMILY_WEIGHTS = {"web": 0.40, "agnews": 0.20, "wmt22": 0.15, "xquad": 0.15, "other_lang": 0.10}  # draws per document
MAX_PARAGRAPHS = 40
# edit -> probability of applying it to a document
EDIT_P = {
    "drop": 0.30, "shuffle": 0.15, "duplicate": 0.12, "splice": 0.25, "truncate": 0.12, "boilerplate": 0.35,
    "policy": 0.10, "javascript": 0.10, "repeat_line": 0.08, "lorem": 0.03, "code": 0.03, "bullets": 0.10,
    "ellipsis": 0.07, "hashtags": 0.04, "numbers": 0.05, "whitespace": 0.05, "blank_lines": 0.40,
}


def _ellipsize(p: str, rng: random.Random) -> str:
    words = p.split()
    return " ".join(words[: max(3, rng.randint(5, 15))]) + rng.choice(["...", " ...", "\u2026"])


def make_document(i: int, seed: int, pool: dict[str, list[tuple[str, list[str]]]]) -> tuple[str, list[str]]:
    """(text, edits applied) of document `i`: one real base document with seeded edits."""
    rng = random.Random(f"{seed}:{i}")
    families = list(FAMILY_WEIGHTS)
    family = rng.choices(families, weights=[FAMILY_WEIGHTS[f] for f in families])[0]
    _name, paras = rng.choice(pool[family])
    if len(paras) > MAX_PARAGRAPHS:  # a window of long pages (RFCs, books): page-sized documents
        start = rng.randint(0, len(paras) - MAX_PARAGRAPHS)
        paras = paras[start : start + MAX_PARAGRAPHS]
    paras = list(paras)
    edits: list[str] = []

    def on(edit: str) -> bool:
        if rng.random() < EDIT_P[edit]:
            edits.append(edit)
            return True
        return False

    if on("splice"):  # paragraphs of a second document, sometimes in another language
        other_family = rng.choices(families, weights=[FAMILY_WEIGHTS[f] for f in families])[0]
        other = list(rng.choice(pool[other_family])[1])
        k = rng.randint(1, max(1, len(other)))
        start = rng.randint(0, len(other) - k)
        pos = rng.randint(0, len(paras))
        paras[pos:pos] = other[start : start + k]
    if len(paras) > 2 and on("drop"):
        keep = max(1, int(len(paras) * rng.uniform(0.5, 0.9)))
        idx = sorted(rng.sample(range(len(paras)), keep))
        paras = [paras[j] for j in idx]
    if len(paras) > 1 and on("shuffle"):
        rng.shuffle(paras)
    if on("duplicate"):
        for _ in range(rng.randint(1, 4)):
            p = rng.choice(paras)
            paras.insert(rng.randint(0, len(paras)), p)
    if on("bullets"):  # a share of paragraphs (or all) become bullet items
        share = rng.choice([0.3, 0.6, 1.0])
        mark = rng.choice(["\u2022 ", "- ", "* "])
        paras = [mark + p if rng.random() < share else p for p in paras]
    if on("ellipsis"):
        share = rng.choice([0.2, 0.5, 0.8])
        paras = [_ellipsize(p, rng) if rng.random() < share else p for p in paras]
    if on("boilerplate"):
        for _ in range(rng.randint(1, 12)):
            paras.insert(rng.randint(0, len(paras)), rng.choice(BOILERPLATE))
    if on("policy"):
        paras.insert(rng.randint(0, len(paras)), rng.choice(POLICY))
    if on("javascript"):
        paras.insert(rng.randint(0, len(paras)), rng.choice(JAVASCRIPT))
    if on("repeat_line"):
        line = rng.choice(BOILERPLATE + paras)
        for _ in range(rng.randint(2, 8)):
            paras.insert(rng.randint(0, len(paras)), line)
    if on("lorem"):
        paras.insert(rng.randint(0, len(paras)), LOREM)
    if on("code"):
        paras.insert(rng.randint(0, len(paras)), rng.choice(CODE))
    if on("hashtags"):
        tags = " ".join(rng.sample(HASHTAGS, rng.randint(3, 10)))
        for _ in range(rng.randint(1, 6)):
            paras.insert(rng.randint(0, len(paras)), tags)
    if on("numbers"):
        for _ in range(rng.randint(3, 40)):
            row = " | ".join(rng.choice([f"{rng.randint(1, 9999):,}", f"{rng.uniform(0, 100):.1f}%", str(rng.randint(1990, 2024))])
                             for _ in range(rng.randint(3, 6)))
            paras.insert(rng.randint(0, len(paras)), row)
    text_paras = paras
    if on("whitespace"):  # trailing spaces, tabs, doubled spaces: what normalisers are for
        text_paras = [p.replace(" ", rng.choice(["  ", " \t", " "]), rng.randint(0, 3)) + rng.choice(["", " ", "  ", "\t"]) for p in paras]
    sep = "\n\n" if on("blank_lines") else "\n"
    text = sep.join(text_paras)
    if on("truncate"):
        cut = rng.randint(min(200, len(text)), max(min(200, len(text)), len(text)))
        text = text[:cut]
        if rng.random() < 0.5 and " " in text:  # cut at a word boundary half of the time
            text = text.rsplit(" ", 1)[0]
    return text.strip() or paras[0], [family] + edits


def build_corpus(n: int, seed: int, cache_dir: Path, parts: int = 4) -> tuple[Path, dict]:
    """Write (or reuse) the corpus of `n` documents; return its folder and its description."""
    out = Path(cache_dir) / f"clean-n{n}-s{seed}-p{parts}-v{VERSION}"
    meta_path = out / "corpus.json"
    if meta_path.exists():
        return out, json.loads(meta_path.read_text())
    tmp = out.with_name(out.name + ".tmp")
    tmp.mkdir(parents=True, exist_ok=True)
    pool = base_documents()
    families, edits = Counter(), Counter()
    n_chars = 0
    files = [open(tmp / f"part-{k:05d}.jsonl", "w", encoding="utf-8") for k in range(parts)]
    per_part = -(-n // parts)
    for i in range(n):
        text, applied = make_document(i, seed, pool)
        families[applied[0]] += 1
        edits.update(applied[1:])
        n_chars += len(text)
        files[i // per_part].write(json.dumps({"id": f"d{i:07d}", "text": text}, ensure_ascii=False) + "\n")
    for f in files:
        f.close()
    meta = {
        "docs": n,
        "seed": seed,
        "version": VERSION,
        "files": parts,
        "bytes": sum(p.stat().st_size for p in tmp.glob("*.jsonl")),
        "mean_chars": round(n_chars / max(n, 1), 1),
        "base_documents": {k: len(v) for k, v in pool.items()},
        "families": dict(families),
        "edits": dict(sorted(edits.items())),
        "recipe": __doc__.split("\n\n", 1)[1].split("The corpus is written", 1)[0].strip(),
    }
    (tmp / "corpus.json").write_text(json.dumps(meta, indent=1))
    if out.exists():  # a concurrent builder finished first
        import shutil

        shutil.rmtree(tmp)
    else:
        tmp.rename(out)
    return out, meta
