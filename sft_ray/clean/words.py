"""Word and sentence splitting shared by the quality filters: plain regexes, no NLP library.

DataTrove's `split_into_words` runs a spaCy/nltk word tokenizer per language and `split_into_sentences`
nltk's punkt; both are slow (spaCy dominates DataTrove's filter time). Here a word is a run of word
characters (with inner apostrophes: "don't" is one word) and a punctuation token is a run of other
non-space characters, so "end." -> ["end", "."] as with the nltk tokenizer, and punctuation tokens
still count as words where Gopher counts them (symbol ratios, the share of words with a letter).
Differences from DataTrove: contractions are not split ("don't" vs "do", "n't") and runs of mixed
punctuation stay one token ("?!" vs "?", "!"); this moves word counts by a few percent on prose.
Sentences end at ., ! or ? (optionally followed by closing quotes/brackets) before whitespace or
the end of the line, which is what punkt does on ordinary prose, minus its abbreviation handling.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+(?:['’]\w+)*|[^\w\s]+")
_SENTENCE_END = re.compile(r"[.!?]+['\"’”)\]]*(?=\s|$)")


def split_words(text: str) -> list[str]:
    return _WORD.findall(text)


def count_sentences(line: str) -> int:
    """Sentences in one line: terminal punctuation marks, plus a trailing unterminated sentence."""
    ends = list(_SENTENCE_END.finditer(line))
    tail = line[ends[-1].end():] if ends else line
    return len(ends) + (1 if tail.strip() else 0)
