"""words.py splits like DataTrove (spaCy 3.8 English tokenizer + sentencizer), and the filters
follow DataTrove 0.10.1 where they used to differ. Expected tokens and sentence counts below were
produced by DataTrove's own `split_into_words` / `split_into_sentences` (spaCy 3.8.18);
benchmarks/clean_throughput.py compares whole corpora."""

from __future__ import annotations

import random

import pytest

from sft_ray.clean import fineweb, gopher_quality, gopher_repetition
from sft_ray.clean.words import count_sentences, split_words
from sft_ray.config import FineWebQualityConfig, GopherQualityConfig
from tests.clean.texts import GOOD_PAGE

WORDS = [
    ("The U.S. economy grew 2.8% in Q3, e.g. faster than expected (Reuters).",
     ["The", "U.S.", "economy", "grew", "2.8", "%", "in", "Q3", ",", "e.g.", "faster", "than", "expected", "(", "Reuters", ")", "."]),
    ("Don't worry: it's fine, they're here... I'm sure we'll win!?",
     ["Do", "n't", "worry", ":", "it", "'s", "fine", ",", "they", "'re", "here", "...", "I", "'m", "sure", "we", "'ll", "win", "!", "?"]),
    ("Visit https://www.example.com/path?x=1&y=2 or e-mail user@example.com, #news @bbc :) (╯°□°）╯︵┻━┻",
     ["Visit", "https://www.example.com/path?x=1&y=2", "or", "e", "-", "mail", "user@example.com", ",", "#", "news", "@bbc",
      ":)", "(╯°□°）╯︵┻━┻"]),
    ("“Quoted,” he said — a well-known state-of-the-art co-op; $5.6bn, £3, 1,000,000 and 3:30pm.",
     ["“", "Quoted", ",", "”", "he", "said", "—", "a", "well", "-", "known", "state", "-", "of", "-", "the", "-", "art", "co", "-",
      "op", ";", "$", "5.6bn", ",", "£", "3", ",", "1,000,000", "and", "3:30pm", "."]),
    ("Mr. Smith's dog (aged 3½) ran 10km/h on 2020-01-05 [1][edit].",
     ["Mr.", "Smith", "'s", "dog", "(", "aged", "3½", ")", "ran", "10", "km/h", "on", "2020", "-", "01", "-", "05", "[", "1][edit", "]", "."]),
]

SENTENCES = [
    ("Mr. Smith went to Washington. He arrived at 3 p.m. and left.", 2),
    ("The U.S. is big. So is Canada! Really? Yes...", 4),
    ('He said "stop." Then he left (quietly). End', 3),
    ("Numbers like 3.5 and 1,000 do not end sentences. This one does.", 2),
    ("One!!! Two?! Three. . . four", 4),
]


@pytest.mark.parametrize("text, expected", WORDS)
def test_words_are_spacy_english_tokens(text, expected):
    assert list(split_words(text)) == expected


def test_words_ignore_whitespace_kind():
    assert split_words("a  b\n\nc\td\u00a0e") == ("a", "b", "c", "d", "e")


@pytest.mark.parametrize("line, expected", SENTENCES)
def test_sentences_are_spacy_sentencizer_sentences(line, expected):
    assert count_sentences(line) == expected


def test_stop_words_count_distinct_words():
    # DataTrove (and Gopher): at least two *different* stop words; "the" forty times is one.
    text = " ".join(["The cat sat on the mat near the door."] * 5 + ["Dogs bark loudly at night."] * 5)
    assert gopher_quality.reason(text, GopherQualityConfig()) == "gopher_enough_stop_words"
    assert gopher_quality.reason(text + " Time to go.", GopherQualityConfig()) is None


def test_fineweb_ignores_blank_lines_and_quotes_do_not_end_lines():
    cfg = FineWebQualityConfig()
    # Blank lines are not lines: 6 short lines of 7 are short with or without the blank ones.
    assert fineweb.reason(GOOD_PAGE.replace("\n", "\n\n"), cfg) is None
    quoted = "\n".join(f'He said "this is line number {i} of the quoted story"' for i in range(20))
    assert fineweb.reason(quoted, cfg) == "fineweb_line_punct_ratio"  # '"' is not terminal punctuation


def test_duplicated_ngrams_jumping_between_candidates_equals_the_full_scan():
    rng = random.Random(0)
    vocab = "the a of cat dog sat ran on mat log big small red blue".split()
    for _ in range(200):
        words = [rng.choice(vocab) for _ in range(rng.randint(0, 80))]
        cands = gopher_repetition.repeated_positions(words, 5)
        for n in range(5, 11):
            assert gopher_repetition.duplicated_ngram_chars(words, n, cands) == gopher_repetition.duplicated_ngram_chars(words, n)
