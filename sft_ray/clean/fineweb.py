"""FineWeb quality filter: line-level signals that Gopher and C4 miss (lists, menus, repeated lines).

From Penedo et al. 2024, "The FineWeb Datasets: Decanting the Web for the Finest Text Data at
Scale", section 3.3 (custom heuristic filters, chosen to improve on C4's terminal-punctuation
rule), as in DataTrove 0.10.1 `src/datatrove/pipeline/filters/fineweb_quality_filter.py`. Over the
non-blank lines: reject when fewer than 12% end in terminal punctuation (DataTrove's
`TERMINAL_PUNCTUATION`: . ! ? and their equivalents in other scripts, not closing quotes), when
more than 67% are at most 30 characters, when more than 1% of the characters (newlines excluded)
sit in duplicated lines, or when there are more than 0.3 newlines per word. Comparisons (<, >)
and reason names follow DataTrove 0.10.1 (earlier releases used <= and >= and ended lines in
. ' " ! ?), prefixed `fineweb_`. Words are DataTrove's (`words.split_words`) or the document language's (clean/segment.py).
"""

from __future__ import annotations

from sft_ray.clean.gopher_repetition import find_duplicates
from sft_ray.clean.segment import NO_SPACE, base_lang
from sft_ray.clean.segment import words as split_words
from sft_ray.clean.words import TERMINAL_PUNCTUATION

# Closing quotes and brackets that end a sentence in CJK text (」』”）), after 。！？ (DataTrove's
# TERMINAL_PUNCTUATION already has those): a line ending “……。” is punctuated.
CJK_TERMINAL = TERMINAL_PUNCTUATION + ("」", "』", "”", "）")
from sft_ray.config import FineWebQualityConfig


def reason(text: str, cfg: FineWebQualityConfig, lang: str | None = None) -> str | None:
    lines = [line for line in text.split("\n") if line.strip()]
    if not lines:
        return "fineweb_empty"
    ends = CJK_TERMINAL if base_lang(lang) in NO_SPACE else TERMINAL_PUNCTUATION
    ratio = sum(line.endswith(ends) for line in lines) / len(lines)
    if ratio < cfg.line_punct_thr and not (ratio == 0 and cfg.line_punct_exclude_zero):
        return "fineweb_line_punct_ratio"
    if sum(len(line) <= cfg.short_line_length for line in lines) / len(lines) > cfg.short_line_thr:
        return "fineweb_short_line_ratio"
    n_chars = len(text.replace("\n", ""))
    if n_chars and find_duplicates(lines)[1] / n_chars > cfg.char_duplicates_ratio:
        return "fineweb_char_dup_ratio"
    n_words = len(split_words(text, lang))
    if n_words and text.count("\n") / n_words > cfg.new_line_ratio:
        return "fineweb_list_ratio"
    return None
