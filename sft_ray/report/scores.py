"""Per-document filter statistics for the report's score distributions, recomputed on sampled records.

The clean filters (sft_ray/clean/) return only a reason, not the numbers they compared, so the
report recomputes those numbers, on a bounded sample of records only (report/sample.py), with the
filters' own helpers (words, duplicates, n-grams, sentences, C4's line rules): the same counting
as the filters, read-only. This module is the one place that calls into sft_ray/clean/, so a
change of those helpers' signatures breaks here alone: `doc_scores` then returns the error under
`"_error"` and the report says the scores are unavailable instead of failing the build.

Each statistic is named after the filter field it is compared with (config/clean.py) in `STATS`:
(filter, statistic, [(config field, "min" | "max")]); "min" rejects below the field's value,
"max" above it. Caveat, said in the report: a kept web record's text is written after C4 removed
lines and PII redaction replaced values, so its Gopher statistics can differ a little from what
the filter saw; a record the clean stage rejected is written as the filters saw it.
"""

from __future__ import annotations

import re

# The clean chain in order (sft_ray/clean/__init__.py): a record rejected by link i reached links <= i.
CHAIN = ("length", "langid", "bitext", "gopher_quality", "gopher_repetition", "c4", "fineweb", "pii")
# Reason prefixes -> link (gopher_repetition_ before gopher_: the longer prefix first).
_REASON_LINK = (("too_short", "length"), ("too_long", "length"), ("lang_mismatch", "langid"), ("low_lang_score", "langid"),
                ("bitext_", "bitext"), ("gopher_repetition_", "gopher_repetition"), ("gopher_", "gopher_quality"),
                ("c4_", "c4"), ("fineweb_", "fineweb"))
TOP_NS = (2, 3, 4)  # GopherRepetitionConfig.top_n_grams defaults
DUP_NS = (5, 6, 7, 8, 9, 10)  # GopherRepetitionConfig.dup_n_grams defaults

# filter -> [(statistic, [(config field, "min"|"max")], what it is)]; "length" fields sit on CleanConfig itself.
STATS: dict[str, list[tuple[str, list[tuple[str, str]], str]]] = {
    "length": [("chars", [("min_chars", "min"), ("max_chars", "max")], "characters after normalising")],
    "langid": [("lang_score", [("threshold", "min")], "probability of the declared (or top) language")],
    "gopher_quality": [
        ("non_symbol_words", [("min_doc_words", "min"), ("max_doc_words", "max")], "words that are not only punctuation"),
        ("avg_word_length", [("min_avg_word_length", "min"), ("max_avg_word_length", "max")], "mean length of those words"),
        ("hash_ratio", [("max_symbol_word_ratio", "max")], "'#' per word"),
        ("ellipsis_ratio", [("max_symbol_word_ratio", "max")], "ellipses per word"),
        ("bullet_lines_ratio", [("max_bullet_lines_ratio", "max")], "share of lines starting with a bullet"),
        ("end_ellipsis_lines_ratio", [("max_ellipsis_lines_ratio", "max")], "share of lines ending in an ellipsis"),
        ("alpha_words_ratio", [("max_non_alpha_words_ratio", "min")], "share of words with a letter"),
        ("stop_words", [("min_stop_words", "min")], "different English stop words"),
    ],
    "gopher_repetition": [
        ("dup_para_frac", [("dup_para_frac", "max")], "share of duplicated paragraphs"),
        ("dup_para_char_frac", [("dup_para_char_frac", "max")], "share of characters in duplicated paragraphs"),
        ("dup_line_frac", [("dup_line_frac", "max")], "share of duplicated lines"),
        ("dup_line_char_frac", [("dup_line_char_frac", "max")], "share of characters in duplicated lines"),
        *[(f"top_{n}_gram", [(f"top_n_grams.{n}", "max")], f"share of characters in the most frequent {n}-gram") for n in TOP_NS],
        *[(f"duplicated_{n}_n_grams", [(f"dup_n_grams.{n}", "max")], f"share of characters in repeated {n}-grams") for n in DUP_NS],
    ],
    "c4": [("sentences", [("min_num_sentences", "min")], "sentences in the lines C4 keeps (default line rules)")],
    "fineweb": [
        ("line_punct_ratio", [("line_punct_thr", "min")], "share of lines ending in terminal punctuation"),
        ("short_line_ratio", [("short_line_thr", "max")], "share of lines of at most 30 characters"),
        ("char_dup_ratio", [("char_duplicates_ratio", "max")], "share of characters in duplicated lines"),
        ("new_line_ratio", [("new_line_ratio", "max")], "newlines per word"),
    ],
}
_PARAGRAPHS = re.compile(r"\n{2,}")
_LINES = re.compile(r"\n+")


def link_of(reason: str | None) -> str | None:
    """The clean link that gives `reason` (None for a reason of no scored link)."""
    for prefix, link in _REASON_LINK:
        if reason and reason.startswith(prefix):
            return link
    return None


def doc_scores(text: str) -> dict[str, float]:
    """Every statistic of `STATS` but `lang_score` (a column of the records) for one document's text."""
    try:
        return _scores(text)
    except Exception as e:  # noqa: BLE001 - a changed helper in sft_ray/clean/ must not fail the build's report
        return {"_error": f"{type(e).__name__}: {e}"[:200]}


def _scores(text: str) -> dict[str, float]:
    from sft_ray.clean import c4
    from sft_ray.clean.gopher_quality import STOP_WORDS, word_class
    from sft_ray.clean.gopher_repetition import duplicated_ngram_chars, find_duplicates, repeated_positions, top_ngram_chars
    from sft_ray.clean.words import TERMINAL_PUNCTUATION, count_sentences, split_words
    from sft_ray.config import C4Config

    out: dict[str, float] = {"chars": len(text)}
    words = split_words(text)
    n_words = len(words) or 1
    classes = list(map(word_class, words))
    non_symbol = [w for w, c in zip(words, classes) if c]
    lines = text.splitlines() or [""]
    out |= {
        "non_symbol_words": len(non_symbol),
        "avg_word_length": sum(map(len, non_symbol)) / len(non_symbol) if non_symbol else 0.0,
        "hash_ratio": text.count("#") / n_words,
        "ellipsis_ratio": (text.count("...") + text.count("\u2026")) / n_words,
        "bullet_lines_ratio": sum(ln.lstrip().startswith(("\u2022", "-")) for ln in lines) / len(lines),
        "end_ellipsis_lines_ratio": sum(ln.rstrip().endswith(("...", "\u2026")) for ln in lines) / len(lines),
        "alpha_words_ratio": classes.count(2) / n_words,
        "stop_words": len(STOP_WORDS.intersection(words)),
    }
    n_chars = len(text) or 1
    paragraphs = _PARAGRAPHS.split(text.strip())
    dup_p, dup_p_chars = find_duplicates(paragraphs)
    split_lines = _LINES.split(text)
    dup_l, dup_l_chars = find_duplicates(split_lines)
    out |= {"dup_para_frac": dup_p / len(paragraphs), "dup_para_char_frac": dup_p_chars / n_chars,
            "dup_line_frac": dup_l / len(split_lines), "dup_line_char_frac": dup_l_chars / n_chars}
    out |= {f"top_{n}_gram": top_ngram_chars(words, n) / n_chars for n in TOP_NS}
    candidates = repeated_positions(words, DUP_NS[0])
    out |= {f"duplicated_{n}_n_grams": (duplicated_ngram_chars(words, n, candidates) / n_chars if candidates else 0.0) for n in DUP_NS}
    _, kept = c4.filter_lines(text, C4Config(min_num_sentences=0))  # never rejects for sentences: returns the kept lines
    out["sentences"] = sum(count_sentences(ln) for ln in kept.split("\n") if ln)
    fw_lines = [ln for ln in text.split("\n") if ln.strip()] or [""]
    out |= {
        "line_punct_ratio": sum(ln.endswith(TERMINAL_PUNCTUATION) for ln in fw_lines) / len(fw_lines),
        "short_line_ratio": sum(len(ln) <= 30 for ln in fw_lines) / len(fw_lines),
        "char_dup_ratio": find_duplicates(fw_lines)[1] / (len(text.replace("\n", "")) or 1),
        "new_line_ratio": text.count("\n") / n_words,
    }
    return {k: round(float(v), 4) for k, v in out.items()}


def threshold(cfg: dict, flt: str, field: str):
    """The value of `field` ("a" or "a.n" for dict entries) under `clean.<flt>` (or `clean` for length)."""
    section = cfg if flt == "length" else cfg.get(flt, {})
    name, _, key = field.partition(".")
    value = section.get(name)
    if key and isinstance(value, dict):
        value = value.get(int(key), value.get(key))
    return value
