"""Gopher repetition filter: documents made of repeated lines, paragraphs or n-grams.

Thresholds from Rae et al. 2021 ("Gopher"), appendix A.1.1 and table A1: duplicated lines and
paragraphs <= 30% of lines/paragraphs and <= 20% of characters; the most frequent 2-, 3-, 4-gram
covers <= 20%, 18%, 16% of characters; characters inside duplicated 5..10-grams <= 15%, 14%, 13%,
12%, 11%, 10%. Counting follows DataTrove `src/datatrove/pipeline/filters/gopher_repetition_filter.py`
(paragraphs split on blank lines, lines on newlines, n-grams over words, a duplicated n-gram
skips ahead n words), including its reason names, prefixed `gopher_repetition_`. Words are
DataTrove's (spaCy's English tokens, `words.split_words`) or the document language's
(clean/segment.py).
"""

from __future__ import annotations

import re
from bisect import bisect_left
from collections import Counter
from collections.abc import Sequence

from sft_ray.clean.segment import NO_SPACE, base_lang
from sft_ray.clean.segment import words as split_words
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


def top_ngram_chars(words: Sequence[str], n: int, sep: int = 1) -> int:
    """Characters covered by the most frequent n-gram (the first seen among ties, as DataTrove's
    `Counter.most_common`): its length joined by spaces times its count. Counting word tuples is
    the same as counting space-joined strings (words hold no spaces) and several times faster.
    `sep=0` for scripts written without spaces: their n-grams cover no joining spaces in the text
    (with them, a Japanese 4-gram of 1.7-character words would count 3 spaces for 7 characters)."""
    counts = Counter(zip(*(words[k:] for k in range(n))))
    if not counts:
        return 0
    gram, count = counts.most_common(1)[0]
    return (sum(map(len, gram)) + sep * (n - 1)) * count


def repeated_positions(words: Sequence[str], n: int) -> list[int]:
    """Start positions of n-grams that occur more than once (as word tuples), in order."""
    grams = list(zip(*(words[k:] for k in range(n))))
    counts = Counter(grams)
    if len(counts) == len(grams):
        return []
    return [i for i, g in enumerate(grams) if counts[g] > 1]


def duplicated_ngram_chars(words: Sequence[str], n: int, candidates: list[int] | None = None) -> int:
    """Characters in n-grams seen before, scanning left to right and skipping past each repeat
    (DataTrove `find_all_duplicate`: n-grams compared by their concatenated words).

    `candidates`: positions whose m-gram (m <= n) repeats (`repeated_positions`). An n-gram whose
    leading m words occur once can neither be a repeat nor be repeated later, so the scan jumps
    from candidate to candidate: most documents have few or none. (It assumes that equal
    concatenations come from equal words; DataTrove would also match the same letters split
    differently, "a bc" / "ab c", over a whole n-gram: not seen on real text.)"""
    end = len(words) - n + 1
    if candidates is None:
        candidates = list(range(max(end, 0)))
    seen: set[str] = set()
    chars = i = k = 0
    while True:
        k = bisect_left(candidates, i, k)
        if k == len(candidates) or candidates[k] >= end:
            return chars
        i = candidates[k]
        gram = "".join(words[i : i + n])
        if gram in seen:
            chars += len(gram)
            i += n
        else:
            seen.add(gram)
            i += 1


def reason(text: str, cfg: GopherRepetitionConfig, lang: str | None = None) -> str | None:
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
    words = split_words(text, lang)
    sep = 0 if base_lang(lang) in NO_SPACE else 1
    for n, frac in sorted(cfg.top_n_grams.items()):
        if top_ngram_chars(words, n, sep) / n_chars > frac:
            return f"gopher_repetition_top_{n}_gram"
    dup_ns = sorted(cfg.dup_n_grams.items())
    candidates = repeated_positions(words, dup_ns[0][0]) if dup_ns else []
    for n, frac in dup_ns:
        if candidates and duplicated_ngram_chars(words, n, candidates) / n_chars > frac:
            return f"gopher_repetition_duplicated_{n}_n_grams"
    return None
