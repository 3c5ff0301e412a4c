"""Per-language settings of the web-page filters (Gopher quality/repetition, C4, FineWeb).

The filters' thresholds (config/clean.py) were tuned on English. Applied after language ID, each
record is judged with its language's settings: the filter config, then this module's built-in
`DEFAULTS` for the language, then the user's `clean.languages.<code>` (config/clean.py,
`LanguageConfig`). Words are counted in the language's own segmentation (clean/segment.py).

Stop words (`stop_words.json`): for 34 languages, 8-15 of the most frequent function words, the
analogue of Gopher's 8 English words (Rae et al. 2021, appendix A.1.1) and used the same way (at
least `min_stop_words` = 2 different ones). Picked from the stopwords-iso lists
(github.com/stopwords-iso/stopwords-iso @ 6e8e9a2, MIT), keeping the diacritics real text has where
that list drops them (Greek accents, Romanian "și"/"şi"); Thai's are among pythainlp's
`thai_stopwords()`.

Thresholds that depend on the script (measured on WMT22 zh/ja documents, benchmarks/languages.py):
- Chinese and Japanese words, as rjieba / MeCab segment them, are 1.5-1.7 characters on average, so
  Gopher's 3..10 mean word length becomes 1..6; FineWeb's "short line" (30 characters, about 5
  English words) becomes 10 characters (about 5-6 words), and C4 and FineWeb also accept the
  full-width sentence ends 。！？ and closing quotes 」』” (`c4.END_PUNCTUATION_INTL`).
- Thai marks sentence ends with a space, not punctuation: C4's terminal-punctuation rule and
  FineWeb's punctuated-lines share are off, and a short line is 15 characters.
- Lao, Khmer, Myanmar and Tibetan have no segmenter here: the word-count and word-length rules are
  off for them (their regex "words" are whole phrases), the line and repetition rules still apply.

Fallback, for a language not in the table (and with no `clean.languages` entry): its words come
from the regex splitter, the filters' own thresholds apply, and the stop-word rule is skipped: a
document is never rejected for being in a language the user did not exclude. `lang` null (language
ID off) keeps the English behaviour of the filters as configured.
"""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files

from sft_ray.clean.segment import CHINESE, JAPANESE, NO_SPACE, THAI, base_lang
from sft_ray.config.clean import LANGUAGE_FILTERS, CleanConfig

_CJK = {
    "gopher_quality": {"min_avg_word_length": 1, "max_avg_word_length": 6, "max_non_alpha_words_ratio": 0.75},
    "fineweb": {"short_line_length": 10},
}
_THAI = {
    "gopher_quality": {"min_avg_word_length": 1, "max_avg_word_length": 10},
    "c4": {"filter_no_terminal_punct": False},
    "fineweb": {"line_punct_thr": 0.0, "short_line_length": 15},
}
# Lao, Khmer, Myanmar, Tibetan, Dzongkha: written without spaces and without a segmenter here, so a
# "word" is a whole phrase: the rules that count or measure words are off (the rest still apply).
_UNSEGMENTED = {
    "gopher_quality": {"min_doc_words": 0, "min_avg_word_length": 0, "max_avg_word_length": 1e9, "max_non_alpha_words_ratio": 0.0},
    "c4": {"min_words_per_line": 0, "filter_no_terminal_punct": False},
    "fineweb": {"line_punct_thr": 0.0, "new_line_ratio": 1e9},
}
#: Built-in overrides per base language code (the filters' own fields), beyond the stop words.
DEFAULTS: dict[str, dict[str, dict]] = {
    **{c: _CJK for c in CHINESE | JAPANESE},
    **{c: _THAI for c in THAI},
    **{c: _UNSEGMENTED for c in NO_SPACE - CHINESE - JAPANESE - THAI},
}


@cache
def stop_words() -> dict[str, frozenset[str]]:
    """Built-in stop-word lists by base language code (package data, read once)."""
    data = json.loads((files("sft_ray.clean") / "stop_words.json").read_text("utf-8"))
    return {k: frozenset(v) for k, v in data.items()}


def _alias(code: str) -> str:
    """ISO 639-3 and macrolanguage codes of the table's languages -> the table's key."""
    if code in CHINESE:
        return "zh"
    if code in JAPANESE:
        return "ja"
    if code in THAI:
        return "th"
    return code


def filter_configs(cfg: CleanConfig, lang: str | None) -> dict[str, object]:
    """{filter name: that filter's config for documents in `lang`} (None: the filters as configured)."""
    out = {name: getattr(cfg, name) for name in LANGUAGE_FILTERS}
    b = base_lang(lang)
    if b is None:
        return out
    key = _alias(b)
    user = cfg.languages.get(lang) or cfg.languages.get(b) or cfg.languages.get(key)
    for name in LANGUAGE_FILTERS:
        over = dict(DEFAULTS.get(key, {}).get(name, {}))
        if user is not None:
            over.update(getattr(user, name))
        if name == "gopher_quality":
            base = out[name]
            if user is not None and user.stop_words is not None:
                over["stop_words"] = list(user.stop_words)
            elif base.stop_words is None and key != "en":
                listed = stop_words().get(key)
                if listed is None:
                    over["min_stop_words"] = 0  # the stated fallback: no list, no stop-word rule
                else:
                    over["stop_words"] = sorted(listed)
        if over:
            base = out[name]
            out[name] = type(base).model_validate({**base.model_dump(), **over})
    return out


def per_language(cfg: CleanConfig, langs: list[str | None]) -> dict[str | None, dict[str, object]]:
    """`filter_configs` for each distinct language of a block (resolved once per block)."""
    return {lang: filter_configs(cfg, lang) for lang in set(langs)}
