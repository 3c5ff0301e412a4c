"""Words by language: one tokenizer per record, picked from its `lang` (after language ID).

Every word-based rule (Gopher quality and repetition, C4's words per line, FineWeb's newlines per
word), the bitext token ratio and the report's word counts split text here, so that a Chinese,
Japanese or Thai document is counted in words and not as one whitespace "word" per sentence.
Modelled on DataTrove's `load_word_tokenizer` (`src/datatrove/utils/word_tokenizers.py`), which
maps a language code to a tokenizer; the choices here need no download at run time:

    en, null         `words.split_words`: spaCy's English rules, as DataTrove (unchanged results)
    zh (yue, wuu..)  rjieba (the Rust port of jieba's default dictionary and HMM)
    ja               fugashi over MeCab with unidic-lite (the dictionary ships in the wheel)
    th               pythainlp `word_tokenize`, engine newmm (its dictionary ships in the wheel)
    anything else    a regex: runs of letters/digits (with inner ' - ’) and single punctuation
                     characters, which is what spaCy's tokenizer amounts to for space-delimited
                     scripts apart from English's special cases

Whitespace is never a word. Results are memoised per text (a block is split once by Gopher
quality and again by Gopher repetition and FineWeb), as `words.split_words` is.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache, lru_cache

from sft_ray.clean.words import count_sentences as _english_sentences
from sft_ray.clean.words import split_words as _english_words

#: Language codes (ISO 639-1 and -3) per tokenizer; codes may carry a region or script (zh-Hant, pt-BR).
CHINESE = frozenset("zh zho chi cmn yue wuu gan hak hsn nan lzh".split())
JAPANESE = frozenset("ja jpn".split())
THAI = frozenset("th tha".split())
#: Languages written without spaces between words: character shingles in dedup, no whitespace tokens.
NO_SPACE = CHINESE | JAPANESE | THAI | frozenset("lo lao km khm my mya bo bod dz dzo".split())



def _mark_ranges() -> str:
    """A regex class body of every combining mark (Mn, Mc, Me) in the Basic Multilingual Plane:
    Python's \\w has none of them, so Devanagari matras, Arabic harakat or Khmer vowel signs
    would cut words apart."""
    out, start, prev = [], None, None
    for cp in range(0x300, 0x10000):
        if unicodedata.category(chr(cp)).startswith("M"):
            if start is None:
                start = cp
            elif cp != prev + 1:
                out.append((start, prev))
                start = cp
            prev = cp
    out.append((start, prev))
    return "".join(f"\\u{a:04x}-\\u{b:04x}" if a != b else f"\\u{a:04x}" for a, b in out)


_MARKS = _mark_ranges()
_REGEX_WORD = re.compile(rf"[^\W_](?:[\w{_MARKS}]|['’\-](?=\w)|(?<=\d)[.,:/](?=\d))*|[^\w\s{_MARKS}]|[{_MARKS}]+|_+")
# Sentence ends of scripts without spaces (DataTrove's TERMINAL_PUNCTUATION's CJK members and the
# Thai/Khmer/Myanmar/Tibetan ends): a sentence is a run of text up to one of these, or the line end.
_CJK_SENTENCE = re.compile(r"[^。！？!?．｡…។៕။།]+[。！？!?．｡…។៕။།]*")


def base_lang(lang: str | None) -> str | None:
    """`zh-Hant` -> `zh`, `pt_BR` -> `pt`, `en|de` (several allowed) -> `en`; None stays None."""
    if not lang:
        return None
    return re.split(r"[-_|]", lang, maxsplit=1)[0].lower()


def tokenizer_name(lang: str | None) -> str:
    """Which tokenizer `words` uses for a language: english, chinese, japanese, thai or regex."""
    b = base_lang(lang)
    if b is None or b == "en" or b == "eng":
        return "english"
    if b in CHINESE:
        return "chinese"
    if b in JAPANESE:
        return "japanese"
    if b in THAI:
        return "thai"
    return "regex"


@cache
def _japanese_tagger():
    import fugashi  # imported on first use: a worker that never sees Japanese never loads MeCab

    return fugashi.Tagger()


def _drop_space(tokens) -> tuple[str, ...]:
    return tuple(t for t in (s.strip() for s in tokens) if t)


def _chinese(text: str) -> tuple[str, ...]:
    import rjieba

    return _drop_space(rjieba.cut(text))


def _japanese(text: str) -> tuple[str, ...]:
    tagger = _japanese_tagger()
    return _drop_space(w.surface for line in text.splitlines() for w in tagger(line))


def _thai(text: str) -> tuple[str, ...]:
    from pythainlp.tokenize import word_tokenize

    return _drop_space(word_tokenize(text, engine="newmm", keep_whitespace=False))


def regex_words(text: str) -> tuple[str, ...]:
    """Space-delimited scripts other than English: letter/digit runs (inner apostrophes and hyphens
    kept, "aujourd'hui", "Baden-Württemberg"; numbers whole, "1.000,5") and each punctuation character
    on its own."""
    return tuple(_REGEX_WORD.findall(text))


_SPLITTERS = {"english": _english_words, "chinese": _chinese, "japanese": _japanese, "thai": _thai, "regex": regex_words}


@lru_cache(maxsize=1024)
def words(text: str, lang: str | None = None) -> tuple[str, ...]:
    """The words of `text` in language `lang` (None: English, the chain's behaviour before language ID
    filled `lang`). Memoised for one block's texts, like `words.split_words`."""
    return _SPLITTERS[tokenizer_name(lang)](text)


def count_words(texts: list[str | None], langs: list[str | None]) -> list[int]:
    """Words per text (0 for null), each in its own language: for token ratios and report histograms."""
    return [len(words(t, lang)) if t else 0 for t, lang in zip(texts, langs)]


def count_sentences(line: str, lang: str | None = None) -> int:
    """Sentences in one line: spaCy's sentencizer rules for space-delimited scripts (`words.count_sentences`),
    and for scripts without spaces, runs of text closed by a sentence end (。！？ ...) or the line end."""
    if base_lang(lang) in NO_SPACE:
        return sum(1 for s in _CJK_SENTENCE.findall(line) if any(unicodedata.category(c)[0] in "LN" for c in s))
    return _english_sentences(line)
