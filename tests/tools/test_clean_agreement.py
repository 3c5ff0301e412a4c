"""sft_ray's clean chain vs DataTrove's, without DataTrove or Ray (tools/clean_agreement.py): the
chain keeps and rejects on the benchmark corpus, DataTrove's reasons map onto ours, and agreement
classes are counted and checked against the chain without normalisation."""

from __future__ import annotations

import json

from tests.clean.texts import GOOD_PAGE
from tools import clean_agreement as compare
from tools import clean_corpus


def test_sft_ray_chain_keeps_and_rejects_on_the_corpus(tmp_path):
    corpus, _ = clean_corpus.build_corpus(120, seed=3, cache_dir=tmp_path, parts=2)
    texts = {json.loads(line)["id"]: json.loads(line)["text"] for f in corpus.glob("*.jsonl") for line in open(f, encoding="utf-8")}
    decided = compare.decide(texts, corpus, normalize=True)
    reasons = {compare.filter_of(r) for r in decided.values()}
    assert "kept" in reasons and {"langid", "gopher_quality"} <= reasons


def test_datatrove_reasons_map_to_ours():
    assert compare.their_reason("gopher_repetition", "dup_line_frac") == "gopher_repetition_dup_line_frac"
    assert compare.their_reason("gopher_quality", "gopher_short_doc") == "gopher_short_doc"
    assert compare.their_reason("c4", "too_few_sentences") == "c4_too_few_sentences"
    assert compare.their_reason("fineweb", "char_dup_ratio") == "fineweb_char_dup_ratio"
    assert compare.filter_of("lang_mismatch") == compare.filter_of(compare.their_reason("langid", None)) == "langid"


def test_agreement_classes_and_normalisation_check(tmp_path):
    corpus = tmp_path / "c"
    corpus.mkdir()
    para = "Lines that differ only in their spacing are the same line once whitespace is normalised."
    doc = GOOD_PAGE + "\n" + "\n".join([para, para.replace(" ", "  "), para.replace(" ", " \t")])
    (corpus / "part-00000.jsonl").write_text(json.dumps({"id": "d1", "text": doc}) + "\n" + json.dumps({"id": "d2", "text": "x"}) + "\n")
    ours = {"d1": "fineweb_char_dup_ratio", "d2": "gopher_short_doc"}
    theirs = {"d1": None, "d2": "gopher_short_doc"}
    ag = compare.agreement(ours, theirs, corpus)
    assert ag["equal"] == 1 and ag["agreement"] == 0.5 and ag["rejected_both_same_filter"] == "1/1"
    [c] = ag["classes"]
    assert (c["ours"], c["theirs"], c["count"], c["example"]) == ("fineweb_char_dup_ratio", "kept", 1, "d1")
    assert c["normalisation"] == 1  # the three lines differ only in spacing: without normalisation it agrees
