"""Words and filter settings by language: segmentation (clean/segment.py), per-language thresholds
and stop words (clean/languages.py) on real German, Chinese and Japanese text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sft_ray import schema
from sft_ray.clean import c4, clean_batch, fineweb, gopher_quality, gopher_repetition, languages, segment
from sft_ray.clean.words import split_words
from sft_ray.config import CleanConfig
from tests.clean.texts import GOOD_PAGE, HEISE

DATA = Path(__file__).resolve().parents[1] / "data"


def _contexts(lang: str, n: int = 6) -> list[str]:
    """n documents of three consecutive XQuAD paragraphs each (C4 wants 5 sentences per document)."""
    squad = json.loads((DATA / "qa" / "xquad" / f"xquad.{lang}.json").read_text("utf-8"))
    paras = [p["context"] for art in squad["data"] for p in art["paragraphs"]]
    return ["\n".join(paras[3 * i : 3 * i + 3]) for i in range(n)]


JA = (DATA / "lang" / "wmt22.ja-en.src.ja.txt").read_text("utf-8").splitlines()


def _judge(text: str, lang: str | None, cfg: CleanConfig | None = None) -> str | None:
    fc = languages.filter_configs(cfg or CleanConfig(), lang)
    return (
        gopher_quality.reason(text, fc["gopher_quality"], lang)
        or gopher_repetition.reason(text, fc["gopher_repetition"], lang)
        or c4.reason(text, fc["c4"], lang)
        or fineweb.reason(text, fc["fineweb"], lang)
    )


def test_tokenizer_by_language():
    assert segment.tokenizer_name(None) == segment.tokenizer_name("en") == "english"
    assert [segment.tokenizer_name(x) for x in ("zh", "zh-Hant", "cmn", "ja", "th", "de", "pt_BR")] == [
        "chinese", "chinese", "chinese", "japanese", "thai", "regex", "regex"]
    assert segment.words(GOOD_PAGE, "en") == segment.words(GOOD_PAGE) == split_words(GOOD_PAGE)


def test_segmentation_of_scripts_without_spaces():
    zh = _contexts("zh", 1)[0]
    w = segment.words(zh, "zh")
    assert len(w) > 5 * len(zh.split()) and all(t.strip() == t and t for t in w)
    assert 1.2 < sum(map(len, w)) / len(w) < 2.5  # Chinese words are 1-2 characters
    ja = segment.words(JA[0], "ja")
    assert "パッケージ" in ja and "。" in ja
    assert segment.words("สวัสดีครับ วันนี้อากาศดีมาก", "th")[:2] == ("สวัสดี", "ครับ")
    assert segment.regex_words("Aujourd'hui, Baden-Württemberg: 1.000,5 €.") == (
        "Aujourd'hui", ",", "Baden-Württemberg", ":", "1.000,5", "€", ".")
    assert segment.count_sentences("我们到了。他们没来！为什么？好", "zh") == 4


def test_german_is_judged_with_german_stop_words():
    text = "\n\n".join(HEISE)
    assert gopher_quality.reason(text, CleanConfig().gopher_quality) == "gopher_enough_stop_words"  # English settings
    assert languages.filter_configs(CleanConfig(), "de")["gopher_quality"].stop_words
    assert _judge(text, "de") is None
    # The Wikipedia paragraphs pass, but for one full of years and counts (as its English original would).
    assert [_judge(t, "de") for t in _contexts("de")] == [None, None, "gopher_below_alpha_threshold", None, None, None]


@pytest.mark.parametrize("lang", ["zh", "de", "en"])
def test_parallel_paragraphs_get_the_same_verdict_in_every_language(lang):
    """XQuAD's paragraphs are translations of each other: judged in their own language, each gets
    the English original's verdict (the third is mostly years and counts)."""
    assert [_judge(t, lang) for t in _contexts(lang)] == [None, None, "gopher_below_alpha_threshold", None, None, None]


def test_japanese_document_passes_and_english_rules_would_reject_it():
    doc = "\n".join(JA[:30])
    assert _judge(doc, "ja") is None
    assert _judge(doc, None) is not None


def test_unknown_language_falls_back_without_a_stop_word_rule():
    fc = languages.filter_configs(CleanConfig(), "sw")  # Swahili: no built-in list
    assert fc["gopher_quality"].min_stop_words == 0
    assert gopher_quality.reason(" ".join(["Habari za asubuhi rafiki yangu mpendwa, natumaini uko salama na familia yako yote."] * 6), fc["gopher_quality"], "sw") is None


def test_language_overrides_from_config():
    cfg = CleanConfig.model_validate({"languages": {"de": {"stop_words": ["zzz"], "gopher_quality": {"min_doc_words": 5}}}})
    fc = languages.filter_configs(cfg, "de")
    assert fc["gopher_quality"].stop_words == ["zzz"] and fc["gopher_quality"].min_doc_words == 5
    assert _judge("\n\n".join(HEISE), "de", cfg) == "gopher_enough_stop_words"
    assert languages.filter_configs(cfg, "zh")["gopher_quality"].min_avg_word_length == 1  # built-in CJK default
    with pytest.raises(ValueError, match="clean.languages.de.c4"):
        CleanConfig.model_validate({"languages": {"de": {"c4": {"no_such_field": 1}}}})
    with pytest.raises(ValueError):
        CleanConfig.model_validate({"languages": {"de": {"fineweb": {"short_line_thr": 7}}}})


def test_clean_batch_uses_each_rows_language():
    texts = ["\n\n".join(HEISE), _contexts("zh", 1)[0], GOOD_PAGE]
    rows = [{"id": f"w{i}", "source": "web", "kind": "web", "text": t, "lang": g} for i, (t, g) in enumerate(zip(texts, ["de", "zh", "en"]))]
    cfg = CleanConfig.model_validate({"langid": {"enabled": False}, "pii": {"enabled": False}})
    out = clean_batch(schema.records_from_rows(rows), cfg)
    assert out[schema.REJECT_REASON].to_pylist() == [None, None, None]


def test_report_word_counts_segment_scripts_without_spaces():
    import pyarrow as pa

    from sft_ray.report.aggregates import word_counts

    texts = pa.array(["我们今天去北京大学参观，天气很好。", "Wir besuchen heute die Universität.", "我们今天去北京大学参观。"])
    assert word_counts(texts, ["zh", "de", None]).to_pylist() == [8, 5, 1]  # no language: whitespace words
    assert word_counts(texts, None).to_pylist() == [1, 5, 1]


def test_scripts_without_a_segmenter_are_not_rejected_for_their_words():
    khmer = "\n".join(["ព្រះរាជាណាចក្រកម្ពុជាជាប្រទេសមួយនៅអាស៊ីអាគ្នេយ៍។ រាជធានីគឺភ្នំពេញ។"] * 1 + [
        "ប្រជាជនភាគច្រើននិយាយភាសាខ្មែរ ហើយប្រើអក្សរខ្មែរ។", "សេដ្ឋកិច្ចពឹងផ្អែកលើកសិកម្ម ទេសចរណ៍ និងវាយនភណ្ឌ។",
        "អង្គរវត្តគឺជាប្រាសាទដ៏ល្បីល្បាញបំផុតរបស់ប្រទេស។", "ទន្លេមេគង្គហូរកាត់ប្រទេសពីខាងជើងទៅខាងត្បូង។",
        "បឹងទន្លេសាបគឺជាបឹងទឹកសាបធំជាងគេនៅអាស៊ីអាគ្នេយ៍។"])
    fc = languages.filter_configs(CleanConfig(), "km")
    assert gopher_quality.reason(khmer, CleanConfig().gopher_quality, "km") is not None  # the English thresholds would reject it
    assert gopher_quality.reason(khmer, fc["gopher_quality"], "km") is None
    assert fineweb.reason(khmer, fc["fineweb"], "km") is None
