"""Peer of the quality labeler in benchmarks/quality_score.py: the clean stage's own text heuristics as a
pass/fail quality judge.

What sft_ray/clean does to a `kind: web` document's text, minus language ID and PII (not quality
signals): repair + normalise + drop boilerplate lines (clean/normalize.py), length bounds
(`too_short` / `too_long`), then Gopher quality, Gopher repetition, C4 (rewriting the text to its
kept lines, as clean_batch does) and FineWeb, in clean_batch's order. A text passes when no rule
fires; the first rule that fires is the reason.

`size_rules_off` is the same chain with the rules that need a whole document switched off
(min_chars 0, Gopher min_doc_words 0, C4 min_num_sentences 1): on blocks of one page, the
defaults reject nearly everything for being short, which says nothing about boilerplate.
"""

from __future__ import annotations

from sft_ray.clean import c4, fineweb, gopher_quality, gopher_repetition
from sft_ray.clean.normalize import clean_text, length_reason
from sft_ray.config import CleanConfig

KIND = "web"  # the kind the web filters apply to by default


def size_rules_off(cfg: CleanConfig | None = None) -> CleanConfig:
    cfg = cfg or CleanConfig()
    return cfg.model_copy(update={
        "min_chars": 0,
        "gopher_quality": cfg.gopher_quality.model_copy(update={"min_doc_words": 0}),
        "c4": cfg.c4.model_copy(update={"min_num_sentences": 1}),
    })


def judge(text: str, cfg: CleanConfig) -> str | None:
    """None when the text passes every heuristic, else the first reason (the clean stage's names)."""
    text = clean_text(text, KIND, cfg) or ""
    reason = length_reason(KIND, text, None, None, cfg)
    if reason or not text:
        return reason or "too_short"
    for fcfg, rule in ((cfg.gopher_quality, gopher_quality.reason), (cfg.gopher_repetition, gopher_repetition.reason)):
        if fcfg.enabled and (reason := rule(text, fcfg)):
            return reason
    if cfg.c4.enabled:
        reason, kept = c4.filter_lines(text, cfg.c4)
        if reason:
            return reason
        text = kept if cfg.c4.remove_lines else text
    if cfg.fineweb.enabled:
        return fineweb.reason(text, cfg.fineweb)
    return None
