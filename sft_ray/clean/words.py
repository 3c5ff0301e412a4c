"""Words and sentences for the quality filters, split exactly as DataTrove splits English.

DataTrove's `split_into_words` runs spaCy's blank English tokenizer and `split_into_sentences`
spaCy's rule-based sentencizer; Gopher, C4 and FineWeb count those words and sentences, so a
different splitter moves every ratio (a regex that keeps "),", as one token or splits "U.S." into
four changes the share of alphabetic words by several points on news text). This module
reimplements both algorithms in plain Python over spaCy's own English rules, exported to
`tokenizer_data.json` (tools/export_tokenizer_data.py writes it): no spaCy dependency, and on
benchmarks/clean_throughput.py's corpus the same tokens as spaCy for every document.

The tokenizer (spaCy `Tokenizer._split_affixes` / `_attach_tokens` / special-case matcher):
split on whitespace; for each chunk, repeatedly strip one prefix and one suffix (stopping when
what is left is a special case: a contraction, abbreviation or emoticon), then keep the rest whole
if it is a special case or a URL, else split it at infixes (hyphens between letters, ...).
Chunks repeat a lot (word types), so each chunk's tokens are memoised (bounded LRU), as spaCy
caches them; the word list of a whole text is memoised for the few filters that split one text.

The sentencizer (spaCy `Sentencizer.predict`): a sentence starts at the first token that is
neither punctuation nor a sentence-final character, after a sentence-final character.
"""

from __future__ import annotations

import json
import re
import unicodedata
from functools import cache, lru_cache
from importlib.resources import files
from itertools import chain


@cache
def tokenizer_data() -> dict:
    """spaCy's English tokenizer rules and DataTrove's punctuation (package data, read once)."""
    return json.loads((files("sft_ray.clean") / "tokenizer_data.json").read_text("utf-8"))


_D = tokenizer_data()
_PREFIX = re.compile(_D["prefix"]).search
_SUFFIX = re.compile(_D["suffix"]).search
_INFIX = re.compile(_D["infix"]).finditer
_URL = re.compile(_D["url"]).match
_SPECIALS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _D["special_cases"].items()}
SENTENCE_PUNCT = frozenset(_D["sentence_punct"])
#: DataTrove's `PUNCTUATION_SET` (Gopher's "symbol" words) and `TERMINAL_PUNCTUATION` (FineWeb's line ends).
PUNCTUATION = frozenset(_D["datatrove_punctuation"]) | frozenset(_D["datatrove_terminal_punctuation"])
TERMINAL_PUNCTUATION = tuple(_D["datatrove_terminal_punctuation"])


def _affix_len(match) -> int:
    return match.end() - match.start() if match else 0


def _split_affixes(s: str, specials: bool) -> tuple[list[str], str, list[str]]:
    prefixes: list[str] = []
    suffixes: list[str] = []
    last = 0
    while s and len(s) != last:
        if specials and s in _SPECIALS:
            break
        last = len(s)
        pre = _affix_len(_PREFIX(s))
        if pre:
            minus_pre = s[pre:]
            if minus_pre and specials and minus_pre in _SPECIALS:
                prefixes.append(s[:pre])
                s = minus_pre
                break
        suf = _affix_len(_SUFFIX(s[pre:]))
        if suf:
            minus_suf = s[:-suf]
            if minus_suf and specials and minus_suf in _SPECIALS:
                suffixes.append(s[-suf:])
                s = minus_suf
                break
        if pre and suf and pre + suf <= len(s):
            prefixes.append(s[:pre])
            suffixes.append(s[-suf:])
            s = s[pre:-suf]
        elif pre:
            prefixes.append(s[:pre])
            s = s[pre:]
        elif suf:
            suffixes.append(s[-suf:])
            s = s[:-suf]
    return prefixes, s, suffixes


def _tokenize_chunk(chunk: str, specials: bool) -> list[str]:
    """One whitespace-free chunk, without the special-case matcher pass."""
    if specials and chunk in _SPECIALS:
        return list(_SPECIALS[chunk])
    prefixes, s, suffixes = _split_affixes(chunk, specials)
    tokens = prefixes
    if s:
        if specials and s in _SPECIALS:
            tokens.extend(_SPECIALS[s])
        elif _URL(s):
            tokens.append(s)
        else:
            start = 0
            for m in _INFIX(s):
                a, b = m.start(), m.end()
                if a == 0:
                    continue
                if a != start:
                    tokens.append(s[start:a])
                if a != b:
                    tokens.append(s[a:b])
                start = b
            if s[start:]:
                tokens.append(s[start:])
    tokens.extend(reversed(suffixes))
    return tokens


def _matcher_patterns() -> dict[str, list[tuple[tuple[str, ...], str]]]:
    """spaCy re-joins special cases that contain affixes (":)", "e.g.") when the affix rules split
    them: first token -> [(tokens without special cases, special string)]."""
    out: dict[str, list[tuple[tuple[str, ...], str]]] = {}
    for s in _SPECIALS:
        if s.isspace() or not (_PREFIX(s) or _SUFFIX(s) or list(_INFIX(s))):
            continue
        pattern = tuple(t for c in s.split() for t in _tokenize_chunk(c, specials=False))
        if pattern:
            out.setdefault(pattern[0], []).append((pattern, s))
    return out


_PATTERNS = _matcher_patterns()


@lru_cache(maxsize=1 << 16)
def chunk_tokens(chunk: str) -> tuple[str, ...]:
    """spaCy's English tokens of one whitespace-free chunk (memoised)."""
    tokens = _tokenize_chunk(chunk, specials=True)
    if any(t in _PATTERNS for t in tokens):
        tokens = _rejoin_specials(tokens)
    return tuple(tokens)


def _rejoin_specials(tokens: list[str]) -> list[str]:
    matches = []  # (start, end, special)
    for i, t in enumerate(tokens):
        for pattern, s in _PATTERNS.get(t, ()):
            if tuple(tokens[i : i + len(pattern)]) == pattern:
                matches.append((i, i + len(pattern), s))
    if not matches:
        return tokens
    # spaCy keeps the longest matches first (then the earliest) whose ends are not yet taken.
    kept, seen = [], set()
    for a, b, s in sorted(matches, key=lambda m: (-(m[1] - m[0]), m[0])):
        if a not in seen and b - 1 not in seen:
            kept.append((a, b, s))
        seen.update(range(a, b))
    out, i = [], 0
    for a, b, s in sorted(kept):
        out.extend(tokens[i:a])
        out.extend(_SPECIALS[s])
        i = b
    out.extend(tokens[i:])
    return out


@lru_cache(maxsize=1024)
def split_words(text: str) -> tuple[str, ...]:
    """DataTrove's `split_into_words(text, "en")`: spaCy English tokens, whitespace dropped.
    Memoised for one block's texts (the build's 1,024 records): `clean_batch` runs Gopher quality
    over a whole block before Gopher repetition splits the same texts again (~10 MiB at most)."""
    return tuple(chain.from_iterable(map(chunk_tokens, text.split())))


def _is_punct(token: str) -> bool:
    """spaCy's `is_punct`: every character is Unicode punctuation (category P*)."""
    return all(unicodedata.category(c).startswith("P") for c in token)


@lru_cache(maxsize=1 << 16)
def _chunk_sentences(chunk: str) -> tuple[int, bool, int, bool]:
    """The sentencizer over one chunk, from both states: (sentence starts, sentence-final
    character pending after it) entering without, then with, one pending."""
    out: list = []
    for pending in (False, True):
        starts = 0
        for t in chunk_tokens(chunk):
            if t in SENTENCE_PUNCT:
                pending = True
            elif pending and not _is_punct(t):
                starts += 1
                pending = False
        out += [starts, pending]
    return tuple(out)


def count_sentences(line: str) -> int:
    """Sentences spaCy's sentencizer finds in `line` (DataTrove `len(split_into_sentences(line))`):
    one, plus one at each token after a sentence-final character that is not punctuation."""
    chunks = line.split()
    if not chunks:
        return 0
    n, pending = 1, False
    for chunk in chunks:
        s = _chunk_sentences(chunk)
        if pending:
            n, pending = n + s[2], s[3]
        else:
            n, pending = n + s[0], s[1]
    return n
