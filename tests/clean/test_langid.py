"""Language ID: lid.176 detects en/de/fr offline; declared languages are checked per side."""

from __future__ import annotations

from sft_ray import schema
from sft_ray.clean import clean_batch, langid
from sft_ray.config import CleanConfig
from tests.clean.texts import BBC, CAPTIONS_DE, CAPTIONS_EN, HEISE, LEMONDE

NOT_LANGUAGE = "Q3 EBITDA 12.5m EUR; YoY +4%"


def test_detects_english_german_french_with_the_shipped_model():
    scores = langid.predict([BBC[0], HEISE[0], LEMONDE, "line one\nline two of an English text"])
    assert [langid.top(s)[0] for s in scores] == ["en", "de", "fr", "en"]
    assert all(langid.top(s)[1] > 0.9 for s in scores[:3])
    langid.predict([BBC[1]])
    assert langid.load_model.cache_info().currsize == 1  # loaded once per process


def test_decide():
    assert langid.decide({"en": 0.9}, "en", 0.65) == (None, 0.9)
    assert langid.decide({"de": 0.9, "en": 0.05}, "en", 0.65) == ("lang_mismatch", 0.05)
    assert langid.decide({"en": 0.4, "fr": 0.2}, "en", 0.65) == ("low_lang_score", 0.4)
    assert langid.decide({"en": 0.4, "fr": 0.2}, "en", 0.65, reject_low=False) == (None, 0.4)
    assert langid.decide({"fr": 0.3}, None, 0.65) == ("low_lang_score", 0.3)


def _doc(i, kind, text, lang):
    return {"id": str(i), "source": "s", "kind": kind, "text": text, "lang": lang}


def test_documents_get_lang_and_lang_score_and_reasons():
    rows = [
        _doc(0, "news", BBC[0], "en"),
        _doc(1, "news", HEISE[0], "en"),  # declared English, confidently German
        _doc(2, "web", LEMONDE, None),  # nothing declared: labelled
        _doc(3, "web", NOT_LANGUAGE, "en"),  # web: an unconfident detection rejects
        _doc(4, "news", NOT_LANGUAGE, "en"),  # news: it does not (short texts are often unsure)
    ]
    cfg = CleanConfig.model_validate({"gopher_quality": {"enabled": False}, "gopher_repetition": {"enabled": False},
                                      "c4": {"enabled": False}, "fineweb": {"enabled": False}})
    out = clean_batch(schema.records_from_rows(rows), cfg).to_pylist()
    assert [r["reject_reason"] for r in out] == [None, "lang_mismatch", None, "low_lang_score", None]
    assert [r["lang"] for r in out[:3]] == ["en", "de", "fr"]
    assert out[4]["lang"] == "en" and out[4]["lang_score"] < 0.65  # declared language kept, its low score recorded
    assert all(isinstance(r["lang_score"], float) for r in out)
    off = clean_batch(schema.records_from_rows(rows), cfg.model_copy(update={"langid": cfg.langid.model_copy(update={"enabled": False})}))
    assert off[schema.REJECT_REASON].null_count == 5 and off[schema.LANG_SCORE].null_count == 5


def test_translation_pair_sides_are_checked_against_declared_languages():
    pair = {"source": "m30k", "kind": "translation", "src_lang": "en", "tgt_lang": "de"}
    rows = [
        {**pair, "id": "ok", "src_text": CAPTIONS_EN[0], "tgt_text": CAPTIONS_DE[0]},
        {**pair, "id": "swapped", "src_text": CAPTIONS_DE[1], "tgt_text": CAPTIONS_EN[1]},
    ]
    out = clean_batch(schema.records_from_rows(rows), CleanConfig()).to_pylist()
    assert [r["reject_reason"] for r in out] == [None, "lang_mismatch"]
    assert out[0]["lang"] is None and out[0]["lang_score"] > 0.9
    assert out[1]["lang_score"] < 0.1


def test_source_may_allow_several_languages():
    from sft_ray.config import SourceConfig

    src = SourceConfig(name="w", kind="web", path="x", format="jsonl", langs={"text": ["en", "de"]})
    assert src.langs["text"] == "en|de"
    rows = [_doc(0, "news", BBC[0], "en|de"), _doc(1, "news", HEISE[0], "en|de"), _doc(2, "news", LEMONDE, "en|de")]
    cfg = CleanConfig.model_validate({"gopher_quality": {"enabled": False}, "gopher_repetition": {"enabled": False},
                                      "c4": {"enabled": False}, "fineweb": {"enabled": False}})
    out = clean_batch(schema.records_from_rows(rows), cfg).to_pylist()
    assert [(r["reject_reason"], r["lang"]) for r in out] == [(None, "en"), (None, "de"), ("lang_mismatch", "fr")]
