"""Clean: one Ray Data UDF, `clean_batch`, running a chain of small filters over a pyarrow block.

    repair + normalize + length -> langid -> bitext -> gopher_quality -> gopher_repetition -> c4 -> fineweb -> pii

Each link is switched and tuned under `clean.<name>` and tags with stage `clean` and its own
snake_case reason (so the manifest counts `by_stage.clean.<reason>`). Tag, then select: a link only
looks at rows no earlier stage rejected, and never drops rows. The web-page filters (Gopher, C4,
FineWeb) apply to the source kinds in their `kinds` list (default `[web]`; see config/clean.py for why);
language ID and PII redaction apply to all kinds; bitext filters (clean/bitext.py) to translation
pairs. The web-page filters judge each document in its language (the `lang` language ID filled):
its words (clean/segment.py) and its thresholds and stop words (clean/languages.py). PII runs
last so that every filter judged the text as written and dedup hashes the redacted text. HTML extraction happens in the read task (ingest/web.py, clean/extract.py).
"""

from __future__ import annotations

from collections.abc import Callable

import pyarrow as pa

from sft_ray import schema
from sft_ray.clean import bitext, c4, fineweb, gopher_quality, gopher_repetition, langid, languages, pii
from sft_ray.clean.normalize import STAGE, normalize_batch
from sft_ray.config import CleanConfig, FilterConfig
from sft_ray.tags import live_mask, set_columns, tag

__all__ = ["clean_batch"]


def clean_batch(table: pa.Table, cfg: CleanConfig) -> pa.Table:
    """Ray Data UDF (pyarrow batch in, same schema out)."""
    table = normalize_batch(table, cfg)
    table = langid_batch(table, cfg)
    table = bitext.bitext_batch(table, cfg.bitext)
    table = _text_filter(table, cfg, "gopher_quality", gopher_quality.reason)
    table = _text_filter(table, cfg, "gopher_repetition", gopher_repetition.reason)
    table = c4_batch(table, cfg)
    table = _text_filter(table, cfg, "fineweb", fineweb.reason)
    return pii.redact_batch(table, cfg.pii)


def _applicable(table: pa.Table, fcfg: FilterConfig) -> list[bool]:
    """Rows a filter looks at: enabled, not yet rejected, of a kind it applies to, with text."""
    if not fcfg.enabled:
        return [False] * table.num_rows
    live = live_mask(table).to_pylist()
    kinds = table[schema.KIND].to_pylist()
    return [ok and k in fcfg.kinds for ok, k in zip(live, kinds)]


def _langs(table: pa.Table, cfg: CleanConfig) -> tuple[list[str | None], dict]:
    """Each row's `lang` and the filters' settings per language (clean/languages.py)."""
    langs = table[schema.LANG].to_pylist() if schema.LANG in table.column_names else [None] * table.num_rows
    return langs, languages.per_language(cfg, langs)


def _text_filter(table: pa.Table, cfg: CleanConfig, name: str, reason: Callable[[str, object, str | None], str | None]) -> pa.Table:
    """One web-page filter, each document judged with its language's words and settings."""
    texts = table[schema.TEXT].to_pylist()
    todo = _applicable(table, getattr(cfg, name))
    langs, by_lang = _langs(table, cfg)
    return tag(table, STAGE, [reason(t, by_lang[g][name], g) if ok and t else None for ok, t, g in zip(todo, texts, langs)])


def c4_batch(table: pa.Table, cfg: CleanConfig) -> pa.Table:
    """C4 decides per document and, like C4 and DataTrove, keeps only the lines it kept."""
    texts = table[schema.TEXT].to_pylist()
    todo = _applicable(table, cfg.c4)
    langs, by_lang = _langs(table, cfg)
    reasons, new_texts = [], []
    for ok, t, g in zip(todo, texts, langs):
        r, kept = c4.filter_lines(t, by_lang[g]["c4"], g) if ok and t else (None, t)
        reasons.append(r)
        new_texts.append(kept if r is None and cfg.c4.remove_lines else t)
    return tag(set_columns(table, {schema.TEXT: new_texts}), STAGE, reasons)


def langid_batch(table: pa.Table, cfg: CleanConfig) -> pa.Table:
    """Fill `lang`/`lang_score` and tag `lang_mismatch` / `low_lang_score`.

    Documents kept with a declared language keep it in `lang`, with its probability in
    `lang_score`; rejected or undeclared ones get the top detected language and its probability.
    Pairs keep `lang` null (their languages are `src_lang`/`tgt_lang`); `lang_score` is the smaller
    of the two declared-language probabilities, and the first failing side names the reason.
    """
    todo = _applicable(table, cfg.langid)
    kinds = table[schema.KIND].to_pylist()
    cols = {c: table[c].to_pylist() for c in (schema.TEXT, schema.SRC_TEXT, schema.TGT_TEXT, schema.LANG, schema.SRC_LANG, schema.TGT_LANG, schema.LANG_SCORE)}
    jobs: list[tuple[int, str]] = []  # (row, column) for every text to detect
    for i, ok in enumerate(todo):
        sides = (schema.SRC_TEXT, schema.TGT_TEXT) if kinds[i] == "translation" else (schema.TEXT,)
        if ok and all(cols[c][i] for c in sides):
            jobs += [(i, c) for c in sides]
    scores = dict(zip(jobs, langid.predict([cols[c][i] for i, c in jobs])))
    threshold, low_kinds = cfg.langid.threshold, cfg.langid.low_score_kinds
    langs, lang_scores = cols[schema.LANG], cols[schema.LANG_SCORE]
    reasons: list[str | None] = [None] * table.num_rows
    for i in sorted({i for i, _ in jobs}):
        if kinds[i] == "translation":
            reject_low = kinds[i] in low_kinds
            src = langid.decide(scores[(i, schema.SRC_TEXT)], cols[schema.SRC_LANG][i], threshold, reject_low)
            tgt = langid.decide(scores[(i, schema.TGT_TEXT)], cols[schema.TGT_LANG][i], threshold, reject_low)
            reasons[i] = src[0] or tgt[0]
            lang_scores[i] = min(src[1], tgt[1])
        else:
            s = scores[(i, schema.TEXT)]
            langs[i] = langid.resolve_declared(s, langs[i])
            reasons[i], score = langid.decide(s, langs[i], threshold, kinds[i] in low_kinds)
            if reasons[i] is None and langs[i] is not None:
                lang_scores[i] = score
            else:
                langs[i], lang_scores[i] = langid.top(s)
    table = set_columns(table, {schema.LANG: langs, schema.LANG_SCORE: lang_scores})
    return tag(table, STAGE, reasons)
