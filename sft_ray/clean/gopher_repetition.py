"""Gopher repetition filter: documents made of repeated lines, paragraphs or n-grams.

Thresholds from Rae et al. 2021 ("Gopher"), appendix A.1.1 and table A1: duplicated lines and
paragraphs <= 30% of lines/paragraphs and <= 20% of characters; the most frequent 2-, 3-, 4-gram
covers <= 20%, 18%, 16% of characters; characters inside duplicated 5..10-grams <= 15%, 14%, 13%,
12%, 11%, 10%. Counting follows DataTrove `src/datatrove/pipeline/filters/gopher_repetition_filter.py`
(paragraphs split on blank lines, lines on newlines, n-grams over words, a duplicated n-gram
skips ahead n words), including its reason names, prefixed `gopher_repetition_`. Words come from
`words.split_words` (regex instead of DataTrove's spaCy tokenizer).
"""

from __future__ import annotations

import re
from collections import Counter

from sft_ray.clean.words import split_words
from sft_ray.config import GopherRepetitionConfig

_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


def find_duplicates(elements: list[str]) -> tuple[int, int]:
    """(number of repeated elements, characters in them), first occurrences not counted."""
    seen: set[str] = set()
    dup_elements = dup_chars = 0
    for e in elements:
        if e in seen:
            dup_elements += 1
            dup_chars += len(e)
        else:
            seen.add(e)
    return dup_elements, dup_chars


def top_ngram_chars(words: list[str], n: int) -> int:
    """Characters covered by the most frequent n-gram: its length times its count."""
    counts = Counter(" ".join(words[i : i + n]) for i in range(len(words) - n + 1))
    if not counts:
        return 0
    gram, count = counts.most_common(1)[0]
    return len(gram) * count


def duplicated_ngram_chars(words: list[str], n: int) -> int:
    """Characters in n-grams seen before, scanning left to right and skipping past each repeat."""
    seen: set[str] = set()
    chars = i = 0
    while i < len(words) - n + 1:
        gram = "".join(words[i : i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1
    return chars


def reason(text: str, cfg: GopherRepetitionConfig) -> str | None:
    n_chars = len(text)
    if n_chars == 0:
        return None
    paragraphs = _PARAGRAPHS.split(text.strip())
    dup_paras, dup_para_chars = find_duplicates(paragraphs)
    if dup_paras / len(paragraphs) > cfg.dup_para_frac:
        return "gopher_repetition_dup_para_frac"
    if dup_para_chars / n_chars > cfg.dup_para_char_frac:
        return "gopher_repetition_dup_para_char_frac"
    lines = _LINES.split(text)
    dup_lines, dup_line_chars = find_duplicates(lines)
    if dup_lines / len(lines) > cfg.dup_line_frac:
        return "gopher_repetition_dup_line_frac"
    if dup_line_chars / n_chars > cfg.dup_line_char_frac:
        return "gopher_repetition_dup_line_char_frac"
    words = split_words(text)
    for n, frac in sorted(cfg.top_n_grams.items()):
        if top_ngram_chars(words, n) / n_chars > frac:
            return f"gopher_repetition_top_{n}_gram"
    for n, frac in sorted(cfg.dup_n_grams.items()):
        if duplicated_ngram_chars(words, n) / n_chars > frac:
            return f"gopher_repetition_duplicated_{n}_n_grams"
    return None
