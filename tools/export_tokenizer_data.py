"""Export spaCy's English tokenizer rules and DataTrove's punctuation sets for sft_ray/clean/words.py.

    ~/.cache/sft_ray/bench/venv-datatrove/bin/python tools/export_tokenizer_data.py

Writes sft_ray/clean/tokenizer_data.json (package data). Run it in DataTrove's virtual env, which
spaCy comes with (benchmarks/clean_throughput.py creates it under its cache dir), after upgrading
either of them.

DataTrove splits words with spaCy's blank English tokenizer (`split_into_words`) and sentences with
spaCy's rule-based sentencizer (`split_into_sentences`); sft_ray/clean/words.py reimplements both
algorithms in plain Python with these rules, so word counts, n-grams and sentence counts match
DataTrove's without loading spaCy. spaCy (MIT) and DataTrove (Apache-2.0) own this data.

The file is JSON, one key a line and one special case a line (reviewable as a diff):
  prefix, suffix, infix, url   the tokenizer's regular expressions
  special_cases                string -> its tokens (contractions, abbreviations, emoticons), sorted
  sentence_punct               the sentencizer's sentence-final characters, sorted
  datatrove_punctuation, datatrove_terminal_punctuation   `datatrove.utils.text`'s sets, sorted
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "sft_ray" / "clean" / "tokenizer_data.json"


def collect() -> dict:
    """The rules, from the spaCy and DataTrove installed in this interpreter."""
    from importlib.metadata import version

    import spacy
    from datatrove.utils.text import PUNCTUATION, TERMINAL_PUNCTUATION

    nlp = spacy.blank("en")
    tok = nlp.tokenizer
    assert tok.token_match is None and tok.faster_heuristics
    specials = {k: [t[65] for t in v] for k, v in sorted(tok.rules.items())}  # 65 = ORTH
    assert all("".join(v) == k for k, v in specials.items())
    sentencizer = nlp.add_pipe("sentencizer")
    return {
        "about": f"Written by tools/export_tokenizer_data.py from spaCy {spacy.__version__} (MIT) and DataTrove "
                 f"{version('datatrove')} (Apache-2.0): do not edit by hand.",
        "spacy_version": spacy.__version__,
        "prefix": tok.prefix_search.__self__.pattern,
        "suffix": tok.suffix_search.__self__.pattern,
        "infix": tok.infix_finditer.__self__.pattern,
        "url": tok.url_match.__self__.pattern,
        "special_cases": specials,
        "sentence_punct": "".join(sorted(set(sentencizer.punct_chars))),
        "datatrove_punctuation": "".join(sorted(set(PUNCTUATION))),
        "datatrove_terminal_punctuation": "".join(sorted(set(TERMINAL_PUNCTUATION))),
    }


def dumps(data: dict) -> str:
    """JSON with one top-level key a line and one special case a line."""
    def enc(v) -> str:
        return json.dumps(v, ensure_ascii=False)

    lines = []
    for key, value in data.items():
        if isinstance(value, dict):
            lines.append(f"{enc(key)}: {{\n" + ",\n".join(f" {enc(k)}: {enc(v)}" for k, v in value.items()) + "\n}")
        else:
            lines.append(f"{enc(key)}: {enc(value)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def main() -> None:
    OUT.write_text(dumps(collect()), encoding="utf-8")
    print(f"wrote {OUT} ({OUT.stat().st_size:,} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
