"""The clean benchmark's corpus (tools/clean_corpus.py) is deterministic real text in files."""

from __future__ import annotations

import json

from tools import clean_corpus


def test_corpus_is_deterministic_real_text_in_files(tmp_path):
    a, meta = clean_corpus.build_corpus(120, seed=3, cache_dir=tmp_path / "a", parts=3)
    b, _ = clean_corpus.build_corpus(120, seed=3, cache_dir=tmp_path / "b", parts=3)
    files = sorted(p.name for p in a.glob("*.jsonl"))
    assert files == ["part-00000.jsonl", "part-00001.jsonl", "part-00002.jsonl"]
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files)
    docs = [json.loads(line) for f in files for line in open(a / f, encoding="utf-8")]
    assert len({d["id"] for d in docs}) == 120 and all(d["text"].strip() for d in docs)
    assert meta["docs"] == 120 and meta["mean_chars"] > 500 and sum(meta["families"].values()) == 120
    assert {"boilerplate", "splice", "drop"} <= set(meta["edits"])
