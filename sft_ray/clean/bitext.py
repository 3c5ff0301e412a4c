"""Translation-pair (bitext) filters: hard rules for misaligned, untranslated or damaged pairs.

A clean link for live `kind="translation"` rows, after normalise + length and language ID (the
langid link checks each side against its declared language, the filter the Tatoeba Challenge data
preparation leans on, Tiedemann 2020). Rules, in order; the first that fails names the reject:

- `bitext_empty_side`: a side is empty or blank (Bicleaner hard rule `no_empty`). Normalise already
  rejects sides under `pair_min_chars` as `too_short`; this keeps `reason` right on its own.
- `bitext_length_ratio`: longer/shorter side in characters above `max_char_ratio` (3.0 as Bicleaner
  hard rule `length_ratio`; OpusFilter `LengthRatioFilter`, unit char), checked only when the
  longer side has `ratio_min_chars` (ratios of short lines are noise). CJK is script-aware: a Han
  character counts HAN_WEIGHT = 3 Latin characters, a kana or Hangul syllable SYLLABLE_WEIGHT = 2.
  Bicleaner compares UTF-8 bytes when a side is CJK (3 bytes a character); weighting only CJK
  characters keeps accented Latin, Greek and Cyrillic at 1. Measured on WMT22 references: English is
  3.9x the Chinese source in raw characters (2.6x Japanese), so raw ratios reject good pairs;
  weighted, the medians are 1.4 and 1.2, and the pairs still rejected include two misaligned
  zh-en ref B lines.
- `bitext_token_ratio`: the same on words (`max_token_ratio` 3.0, OpusFilter `LengthRatioFilter`
  unit word; Moses `clean-corpus-n.perl` uses `-ratio 9` on tokenised text): whitespace tokens, or
  for a side written without spaces (NO_SPACE_LANGS: zh, ja, th, ...) its segmented words with a
  letter or digit (clean/segment.py: rjieba, MeCab, pythainlp), so zh-en and ja-en pairs are checked
  too (measured in benchmarks/results/languages.md).
- `bitext_copy`: the target is the source left untranslated: equal letters after casefolding
  (Bicleaner `no_identical`), or character-bigram Jaccard >= `copy_similarity` (0.9; real en-de and
  en-fr pairs stay under 0.9, 99% under 0.51). Unlike Bicleaner, a source with fewer than
  COPY_MIN_LETTERS letters may be copied: numbers, dates, placeholders and short names ("OK",
  "Twitter") are correctly translated by copying them.
- `bitext_number_mismatch`: share of numbers without a partner on the other side above
  `max_number_mismatch` (0.5, the threshold of OpusFilter `NonZeroNumeralsFilter`, Vazquez et al.
  2019; Bicleaner's off-by-default `no_number_inconsistencies` demands equality). See
  `number_mismatch` for how numbers are matched across formats.
- `bitext_placeholder_mismatch`: the WMT anonymisation placeholders (`#PRS_ORG#`, `#Product1#`, ...;
  WMT22 general test sources) must survive translation: the *set* of placeholder types must be
  equal. Not their counts: WMT22 references keep every type in all 496 pairs that have one, but a
  translator may merge two mentions (zh-en ref B) and the anonymiser once split a word (de-en
  `gel#PRS_ORG#n`); counting would reject those two good pairs.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

import pyarrow as pa

from sft_ray import schema
from sft_ray.clean import segment
from sft_ray.config import BitextConfig
from sft_ray.tags import live_mask, tag

STAGE = "clean"
# Latin characters a CJK character is worth in length ratios (a Han character is a morpheme, a kana
# or Hangul block a syllable); CJK punctuation and full-width forms count 1.
HAN_WEIGHT, SYLLABLE_WEIGHT = 3, 2
COPY_MIN_LETTERS = 8
# ISO 639-1/-3 codes of languages written without spaces between words.
NO_SPACE_LANGS = frozenset("zh zho cmn yue wuu ja jpn th tha lo lao km khm my mya bo bod dz dzo".split())
# WMT22 anonymisation placeholders: #PRS_ORG#, #NAME#, #NUMBER#, #URL#, #Product1#, #Person1#, ...
PLACEHOLDER = re.compile(r"#[A-Za-z][A-Za-z0-9_]*#")
# A number: digit runs joined by decimal, thousands, time or date separators (3.5 / 3,5 / 1,000 /
# 1.000 / 19:15 / 12/12/19); a space joins only thousands groups (1 000). Any Unicode digits.
NUMBER = re.compile(r"\d+(?:(?:[.,:/'\u00a0\u202f]|(?<!\d{4}) (?=\d{3}(?!\d)))\d+)*")
_DIGITS = re.compile(r"\d+")
_HAN = re.compile(r"[\u2e80-\u2fdf\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f]")
_KANA = re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HANGUL = re.compile(r"[\u1100-\u11ff\uac00-\ud7af]")


def reason(src: str | None, tgt: str | None, src_lang: str | None, tgt_lang: str | None, cfg: BitextConfig) -> str | None:
    """The first failing rule's snake_case name, or None for a pair that passes."""
    src, tgt = src or "", tgt or ""
    if not src.strip() or not tgt.strip():
        return "bitext_empty_side"
    n_src, n_tgt = weighted_length(src), weighted_length(tgt)
    if max(n_src, n_tgt) >= cfg.ratio_min_chars:
        if _ratio(n_src, n_tgt) > cfg.max_char_ratio:
            return "bitext_length_ratio"
        if _ratio(token_count(src, src_lang), token_count(tgt, tgt_lang)) > cfg.max_token_ratio:
            return "bitext_token_ratio"
    if is_copy(src, tgt, cfg.copy_similarity):
        return "bitext_copy"
    if number_mismatch(src, tgt) > cfg.max_number_mismatch:
        return "bitext_number_mismatch"
    if cfg.check_placeholders and set(PLACEHOLDER.findall(src)) != set(PLACEHOLDER.findall(tgt)):
        return "bitext_placeholder_mismatch"
    return None


def token_count(text: str, lang: str | None) -> int:
    """Whitespace tokens, or for a side written without spaces (by language, else by script) its
    segmented words that hold a letter or digit (clean/segment.py; script alone: Chinese, or
    Japanese when kana are present)."""
    if _spaced(text, lang):
        return len(text.split())
    if not lang or segment.tokenizer_name(lang) == "english":
        lang = "ja" if _KANA.search(text) else "zh"
    return sum(1 for w in segment.words(text, lang) if any(c.isalnum() for c in w))


def weighted_length(text: str) -> int:
    """Characters, a Han character counting HAN_WEIGHT and a kana or Hangul syllable SYLLABLE_WEIGHT."""
    syllables = len(_KANA.findall(text)) + len(_HANGUL.findall(text))
    return len(text) + (HAN_WEIGHT - 1) * len(_HAN.findall(text)) + (SYLLABLE_WEIGHT - 1) * syllables


def is_copy(src: str, tgt: str, threshold: float) -> bool:
    """Target equal to the source in letters, or near-equal as text; short sources may be copied."""
    a, b = _letters(src), _letters(tgt)
    if len(a) < COPY_MIN_LETTERS:
        return False
    return a == b or bigram_jaccard(src.casefold(), tgt.casefold()) >= threshold


def bigram_jaccard(a: str, b: str) -> float:
    """Jaccard similarity of the character-bigram sets: O(n), order-aware enough for near-copies."""
    x, y = {a[i : i + 2] for i in range(len(a) - 1)}, {b[i : i + 2] for i in range(len(b) - 1)}
    return len(x & y) / len(x | y) if x or y else 1.0


def number_mismatch(src: str, tgt: str) -> float:
    """Share of numbers (both sides together) without an equal number on the other side.

    0 unless both sides have digits: a side without digits usually spells its numbers out (four,
    三百万, "K1" = first child), which digit matching cannot check. Numbers are read two ways and
    the better match counts, so that neither formatting convention is rejected:
    - whole numbers as significant digits (separators and outer zeros dropped): 1,000 = 1.000 =
      1 000 = 1000, 3.5 = 3,5, and scale words stop mattering: 26.8万 = 268,000 = 268 thousand;
    - digit groups, split at any non-digit: 19.15 = 19:15, 16.3. = 3/16, 13-7 = 13:7, 5点9分 = 5:9.
    """
    runs_src, runs_tgt = (NUMBER.findall(PLACEHOLDER.sub(" ", s)) for s in (src, tgt))
    if not runs_src or not runs_tgt:
        return 0.0
    whole = _unmatched(Counter(map(_significant, runs_src)), Counter(map(_significant, runs_tgt)))
    groups = _unmatched(_groups(runs_src), _groups(runs_tgt))
    return min(whole, groups)


def bitext_batch(table: pa.Table, cfg: BitextConfig) -> pa.Table:
    """Clean link for translation pairs: tag live `kind="translation"` rows with their bitext reason."""
    if not cfg.enabled:
        return table
    live = live_mask(table).to_pylist()
    cols = [table[c].to_pylist() for c in (schema.KIND, schema.SRC_TEXT, schema.TGT_TEXT, schema.SRC_LANG, schema.TGT_LANG)]
    reasons = [
        reason(src, tgt, sl, tl, cfg) if ok and kind == "translation" else None
        for ok, kind, src, tgt, sl, tl in zip(live, *cols)
    ]
    return tag(table, STAGE, reasons)


def _spaced(text: str, lang: str | None) -> bool:
    """Whether whitespace separates words: by language, or by script when the language is unknown."""
    if lang:
        return lang not in NO_SPACE_LANGS
    return not (_HAN.search(text) or _KANA.search(text))


def _letters(text: str) -> str:
    return "".join(c for c in PLACEHOLDER.sub("", text).casefold() if c.isalpha())


def _significant(number: str) -> str:
    return _ascii_digits(number).strip("0") or "0"


def _groups(numbers: list[str]) -> Counter:
    return Counter(_ascii_digits(g).lstrip("0") or "0" for n in numbers for g in _DIGITS.findall(n))


def _ascii_digits(text: str) -> str:
    """The decimal digits of `text` as ASCII (full-width and other scripts' digits included)."""
    return "".join(str(unicodedata.decimal(c)) for c in text if c.isdecimal())


def _unmatched(a: Counter, b: Counter) -> float:
    return ((a - b).total() + (b - a).total()) / (a.total() + b.total())


def _ratio(a: int, b: int) -> float:
    return max(a, b) / min(a, b) if min(a, b) else float("inf")
