"""Gopher quality filter: word-count, word-length, symbol, bullet, ellipsis, alphabetic and
stop-word heuristics over a whole document.

Thresholds from Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from
Training Gopher", appendix A.1.1 (MassiveWeb quality filter): 50..100,000 words, mean word length
3..10 characters, symbol-to-word ratio (`#` and ellipses) <= 0.1, <= 90% of lines starting with a
bullet, <= 30% of lines ending in an ellipsis, >= 80% of words containing an alphabetic character,
>= 2 different stop words of {the, be, to, of, and, that, have, with} (case-sensitive, as in
DataTrove). The order of checks and the reason names follow DataTrove
`src/datatrove/pipeline/filters/gopher_quality_filter.py`, so the first failing check names the
reason (prefixed `gopher_`). Words are DataTrove's (spaCy's English tokens, `words.split_words`),
or the document language's (clean/segment.py, with its stop words: clean/languages.py);
a "symbol" word is made only of DataTrove's punctuation characters.
"""

from __future__ import annotations

from functools import lru_cache

from sft_ray.clean.segment import words as split_words
from sft_ray.clean.words import PUNCTUATION
from sft_ray.config import GopherQualityConfig

STOP_WORDS = frozenset({"the", "be", "to", "of", "and", "that", "have", "with"})
_BULLETS = ("\u2022", "-")
_ELLIPSES = ("...", "\u2026")


@lru_cache(maxsize=1 << 16)
def word_class(word: str) -> int:
    """0: only punctuation ("symbol"), 1: other without a letter, 2: has a letter (memoised per
    word type: the per-character tests were this filter's main cost)."""
    if any(ch.isalpha() for ch in word):
        return 2
    return 1 if any(ch not in PUNCTUATION for ch in word) else 0


def reason(text: str, cfg: GopherQualityConfig, lang: str | None = None) -> str | None:
    """The first failing check, or None; `lang` picks the words (clean/segment.py) and `cfg` is that
    language's settings (clean/languages.py)."""
    words = split_words(text, lang)
    n_words = len(words)
    classes = list(map(word_class, words))
    non_symbol_words = [w for w, c in zip(words, classes) if c]
    n_non_symbol = len(non_symbol_words)
    if n_non_symbol == 0 or n_non_symbol < cfg.min_doc_words:
        return "gopher_short_doc"
    if n_non_symbol > cfg.max_doc_words:
        return "gopher_long_doc"
    avg_word_len = sum(map(len, non_symbol_words)) / n_non_symbol
    if avg_word_len < cfg.min_avg_word_length:
        return "gopher_below_avg_threshold"
    if avg_word_len > cfg.max_avg_word_length:
        return "gopher_above_avg_threshold"
    if text.count("#") / n_words > cfg.max_symbol_word_ratio:
        return "gopher_too_many_hashes"
    if (text.count("...") + text.count("\u2026")) / n_words > cfg.max_symbol_word_ratio:
        return "gopher_too_many_ellipsis"
    lines = text.splitlines() or [""]
    if sum(line.lstrip().startswith(_BULLETS) for line in lines) / len(lines) > cfg.max_bullet_lines_ratio:
        return "gopher_too_many_bullets"
    if sum(line.rstrip().endswith(_ELLIPSES) for line in lines) / len(lines) > cfg.max_ellipsis_lines_ratio:
        return "gopher_too_many_end_ellipsis"
    if classes.count(2) / n_words < cfg.max_non_alpha_words_ratio:
        return "gopher_below_alpha_threshold"
    stop = STOP_WORDS if cfg.stop_words is None else frozenset(cfg.stop_words)
    if cfg.min_stop_words and len(stop.intersection(words)) < cfg.min_stop_words:  # different stop words, not occurrences
        return "gopher_enough_stop_words"
    return None
