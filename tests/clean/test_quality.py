"""Gopher quality / repetition, C4 and FineWeb filters: each named reason on tiny real texts,
good prose passes, and the per-kind defaults spare short news descriptions and captions."""

from __future__ import annotations

import csv
import gzip

import pytest

from sft_ray import schema
from sft_ray.clean import c4, clean_batch, fineweb, gopher_quality, gopher_repetition
from sft_ray.config import C4Config, CleanConfig, FineWebQualityConfig, GopherQualityConfig, GopherRepetitionConfig
from tests.clean.texts import BBC, GOOD_PAGE, HEISE, MEDIUM
from tests.conftest import DEMO_DATA

GQ, GR, C4C, FW = GopherQualityConfig(), GopherRepetitionConfig(), C4Config(), FineWebQualityConfig()
NEWSLETTER = "Follow us on Twitter and Facebook for the latest updates from our newsroom."


def test_good_prose_passes_every_filter():
    assert gopher_quality.reason(GOOD_PAGE, GQ) is None
    assert gopher_repetition.reason(GOOD_PAGE, GR) is None
    assert c4.reason(GOOD_PAGE, C4C) is None
    assert fineweb.reason(GOOD_PAGE, FW) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        (MEDIUM[0], "gopher_short_doc"),  # 36 words < 50
        (GOOD_PAGE + "\n" + " ".join(str(n) for n in range(1000, 1400)), "gopher_below_alpha_threshold"),
        ("\n\n".join(HEISE), "gopher_enough_stop_words"),  # the stop words are English ones
        ("\n".join(f"\u2022 Read the story about {w} and the rest of the news" for w in "abcdefghij"), "gopher_too_many_bullets"),
        ("\n".join(" ".join(p.split()[:14]) + "..." for p in BBC + MEDIUM), "gopher_too_many_end_ellipsis"),
        (GOOD_PAGE + " #news" * 60, "gopher_too_many_hashes"),
    ],
)
def test_gopher_quality_reasons(text, expected):
    assert gopher_quality.reason(text, GQ) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\n".join(MEDIUM + [NEWSLETTER] * 6), "gopher_repetition_dup_line_frac"),
        ("\n\n".join(MEDIUM + [NEWSLETTER] * 6), "gopher_repetition_dup_para_frac"),
        ("\n".join(MEDIUM + [MEDIUM[1]]), "gopher_repetition_dup_line_char_frac"),
        (GOOD_PAGE + "\n" + "cheap flights " * 120, "gopher_repetition_top_2_gram"),
        (GOOD_PAGE + " " + MEDIUM[1] + " " + MEDIUM[3], "gopher_repetition_duplicated_5_n_grams"),
    ],
)
def test_gopher_repetition_reasons(text, expected):
    assert gopher_repetition.reason(text, GR) == expected


def test_c4_reasons_and_line_removal():
    assert c4.reason(GOOD_PAGE + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.", C4C) == "c4_lorem_ipsum"
    assert c4.reason(GOOD_PAGE + '\nThe page config is {"theme": "dark"}.', C4C) == "c4_curly_bracket"
    assert c4.reason(MEDIUM[0], C4C) == "c4_too_few_sentences"  # 3 sentences
    reason, kept = c4.filter_lines(GOOD_PAGE + "\nPlease enable JavaScript to view the comments.\nHome\nShare", C4C)
    assert reason is None and kept == "\n".join(MEDIUM)


def test_fineweb_reasons():
    menu = "\n".join(["Home", "World", "Business", "Sport", "Technology", "Science", "Health", "Contact us", BBC[0]])
    assert fineweb.reason(menu, FW) == "fineweb_line_punct_ratio"
    recipe = "\n".join([BBC[0], "Two cups of flour.", "One egg, beaten.", "A pinch of salt.", "Half a cup of milk.", "Stir well."])
    assert fineweb.reason(recipe, FW) == "fineweb_short_line_ratio"
    assert fineweb.reason(GOOD_PAGE + "\n" + NEWSLETTER + "\n" + NEWSLETTER, FW) == "fineweb_char_dup_ratio"
    glossary = "\n".join(["Telecommunications infrastructure", "Internationalization frameworks",
                          "Environmental sustainability reporting", "Parliamentary representatives abroad",
                          "Intergovernmental organizations", "Biodiversity conservation strategies",
                          "Pharmaceutical manufacturing standards.", "Electroencephalography laboratories."])
    assert fineweb.reason(glossary, FW) == "fineweb_list_ratio"


def _rows(kind, texts):
    return [{"id": f"{kind}{i}", "source": kind, "kind": kind, "text": t, "lang": "en"} for i, t in enumerate(texts)]


def test_clean_batch_tags_web_only_by_default_and_rewrites_c4_lines():
    spam = "\n".join(MEDIUM + [NEWSLETTER] * 6)
    table = schema.records_from_rows(_rows("web", [GOOD_PAGE + "\nPlease enable JavaScript.", spam, MEDIUM[0]]) + _rows("text", [spam]))
    out = clean_batch(table, CleanConfig()).to_pylist()
    assert [r["reject_reason"] for r in out] == [None, "gopher_repetition_dup_line_frac", "gopher_short_doc", None]
    assert {r["reject_stage"] for r in out[1:3]} == {"clean"}
    assert out[0]["text"] == "\n".join(MEDIUM)  # C4 kept lines only
    off = CleanConfig.model_validate({"gopher_quality": {"enabled": False}, "gopher_repetition": {"kinds": ["web", "text"]}})
    out = clean_batch(table, off).to_pylist()
    assert [r["reject_reason"] for r in out] == [None, "gopher_repetition_dup_line_frac", "c4_too_few_sentences",
                                                 "gopher_repetition_dup_line_frac"]


def test_default_config_keeps_ag_news_descriptions_and_multi30k_captions():
    with open(DEMO_DATA / "ag_news_test_part.csv", newline="") as f:
        rows = [{"id": f"ag{i}", "source": "ag", "kind": "news", "title": r[1], "text": r[2], "lang": "en"}
                for i, r in enumerate(csv.reader(f))]
    with gzip.open(DEMO_DATA / "multi30k_train_3k.en.gz", "rt") as en, gzip.open(DEMO_DATA / "multi30k_train_3k.de.gz", "rt") as de:
        rows += [{"id": f"m{i}", "source": "m", "kind": "translation", "src_text": a.strip(), "tgt_text": b.strip(),
                  "src_lang": "en", "tgt_lang": "de"} for i, (a, b) in enumerate(zip(en, de))]
    out = clean_batch(schema.records_from_rows(rows), CleanConfig())
    assert out.num_rows == 3800 + 3000
    assert out[schema.REJECT_REASON].null_count == out.num_rows
    # ...whereas the web-page filters, if applied to news, would wipe most of it out:
    news = schema.records_from_rows(rows[:200])
    strict = CleanConfig.model_validate({"gopher_quality": {"kinds": ["web", "news"]}})
    reasons = clean_batch(news, strict)[schema.REJECT_REASON].to_pylist()
    assert reasons.count(None) < 10 and reasons.count("gopher_short_doc") > 170  # of 200
