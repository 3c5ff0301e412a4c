"""FineWeb quality filter: line-level signals that Gopher and C4 miss (lists, menus, repeated lines).

From Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web for the Finest Text Data at
Scale", section 3.3 (custom heuristic filters, chosen to improve on C4's terminal-punctuation
rule), thresholds as in DataTrove `src/datatrove/pipeline/filters/fineweb_quality_filter.py`:
reject when <= 12% of lines end in terminal punctuation (. ' " ! ?), when >= 67% of lines are at most
30 characters, when >= 1% of the characters (newlines excluded) sit in duplicated lines, or when
there are more than 0.3 newlines per word. Comparisons (<=, >=) and reason names follow DataTrove,
prefixed `fineweb_`. Words come from `words.split_words` (regex instead of nltk's word_tokenize).
"""

from __future__ import annotations

from sft_ray.clean.gopher_repetition import find_duplicates
from sft_ray.clean.words import split_words
from sft_ray.config import FineWebQualityConfig

STOP_CHARS = (".", "'", '"', "!", "?")


def reason(text: str, cfg: FineWebQualityConfig) -> str | None:
    lines = text.split("\n")
    ratio = sum(line.endswith(STOP_CHARS) for line in lines) / len(lines)
    if ratio <= cfg.line_punct_thr and not (ratio == 0 and cfg.line_punct_exclude_zero):
        return "fineweb_line_punct_ratio"
    if sum(len(line) <= cfg.short_line_length for line in lines) / len(lines) >= cfg.short_line_thr:
        return "fineweb_short_line_ratio"
    n_chars = len(text.replace("\n", ""))
    dup_chars = find_duplicates([line for line in lines if line.strip()])[1]
    if n_chars and dup_chars / n_chars >= cfg.char_duplicates_ratio:
        return "fineweb_char_dup_ratio"
    n_words = len(split_words(text))
    if n_words and text.count("\n") / n_words > cfg.new_line_ratio:
        return "fineweb_list_ratio"
    return None
