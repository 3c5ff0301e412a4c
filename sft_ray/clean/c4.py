"""C4 filter: keep lines that look like sentences, reject pages that are code or placeholder text.

Rules from Raffel et al. 2020, "Exploring the Limits of Transfer Learning with a Unified Text-to-Text
Transformer" (JMLR 21), section 2.2 ("Colossal Clean Crawled Corpus"): keep only lines ending in
terminal punctuation (. ? ! " ') and not in an ellipsis, with at least 3 words; drop lines that
mention "javascript"; discard pages with fewer than 5 sentences, with "lorem ipsum", or with a curly
bracket. Also from the TFDS reference code (`c4_utils.py`) as ported to DataTrove
`src/datatrove/pipeline/filters/c4_filters.py` (`C4QualityFilter`): drop lines with a word over
1000 characters, strip Wikipedia citation marks ([1], [edit], [citation needed]) and drop lines
with cookie / terms-of-use notices. Page-level rules only look at lines that survived the earlier
line rules, as in DataTrove. The bad-words list is not applied (it needs a download). Sentences are
counted with `words.count_sentences` (spaCy's sentencizer rules) instead of nltk punkt. Other
languages (`lang`): words per line are whitespace words, or segmented words for scripts without
spaces (clean/segment.py), sentences end at their scripts' marks too (。！？, danda, ...:
`END_PUNCTUATION_INTL`), and the thresholds are the language's (clean/languages.py).
"""

from __future__ import annotations

import re

from sft_ray.clean.segment import NO_SPACE, base_lang, count_sentences, tokenizer_name
from sft_ray.clean.segment import words as split_words
from sft_ray.config import C4Config

CITATION = re.compile(r"\[\d*]|\[edit]|\[citation needed]")
END_PUNCTUATION = (".", "?", "!", '"', "'")
# Other scripts' sentence ends and closing quotes (full-width, CJK, Devanagari danda, Arabic and
# Ethiopic/Myanmar full stops), accepted for documents not in English.
END_PUNCTUATION_INTL = END_PUNCTUATION + ("。", "！", "？", "．", "｡", "」", "』", "”", "’", "»", "）", "।", "॥", "؟", "።", "။")
ELLIPSIS = "..."
POLICY_SUBSTRINGS = ("terms of use", "privacy policy", "cookie policy", "uses cookies", "use of cookies", "use cookies")


def filter_lines(text: str, cfg: C4Config, lang: str | None = None) -> tuple[str | None, str]:
    """(reason or None, the text made of the kept lines). `lang`: words per line and sentences are
    counted in the document's language (clean/segment.py); English and null keep C4's rules."""
    english = tokenizer_name(lang) == "english"
    ends = END_PUNCTUATION if english else END_PUNCTUATION_INTL
    lang = None if english else base_lang(lang)
    kept: list[str] = []
    n_sentences = 0
    for line in text.splitlines():
        line = line.strip()
        # Scripts without spaces: the segmented words that hold a letter or digit (not 。，).
        words = [w for w in split_words(line, lang) if any(c.isalnum() for c in w)] if lang in NO_SPACE else line.split()
        if any(len(w) > cfg.max_word_length for w in words):
            continue
        line = CITATION.sub("", line)
        if cfg.filter_no_terminal_punct and (not line.endswith(ends) or line.endswith(ELLIPSIS)):
            continue
        if len(words) < cfg.min_words_per_line:
            continue
        lower = line.lower()
        if cfg.filter_lorem_ipsum and "lorem ipsum" in lower:
            return "c4_lorem_ipsum", text
        if cfg.filter_javascript and "javascript" in lower:
            continue
        if cfg.filter_curly_bracket and "{" in line:
            return "c4_curly_bracket", text
        if cfg.filter_policy and any(p in lower for p in POLICY_SUBSTRINGS):
            continue
        n_sentences += count_sentences(line, lang)
        kept.append(line)
    if n_sentences < cfg.min_num_sentences:
        return "c4_too_few_sentences", text
    return None, "\n".join(kept).strip()


def reason(text: str, cfg: C4Config, lang: str | None = None) -> str | None:
    return filter_lines(text, cfg, lang)[0]
