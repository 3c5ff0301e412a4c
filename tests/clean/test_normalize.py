"""Clean: NFC, whitespace and length bounds, with named reasons."""

from __future__ import annotations

from sft_ray import schema
from sft_ray.clean.normalize import normalize_batch, normalize_text
from sft_ray.config import CleanConfig


def test_nfc_makes_composed_and_decomposed_equal():
    assert normalize_text("Cafe\u0301 au lait") == normalize_text("Caf\u00e9 au lait") == "Caf\u00e9 au lait"


def test_whitespace_collapses_but_lines_survive():
    assert normalize_text("  a \t b\u00a0c  \r\n\n\n\n second   line ") == "a b c\n\nsecond line"


def test_length_bounds_and_existing_rejects_untouched():
    rows = [
        {"id": "1", "source": "s", "kind": "text", "text": "short"},
        {"id": "2", "source": "s", "kind": "text", "text": "long enough   text here, fine."},
        {"id": "3", "source": "s", "kind": "text", "text": "x" * 50},
        {"id": "4", "source": "s", "kind": "translation", "src_text": "Hi", "tgt_text": "H"},
        {"id": "5", "source": "s", "kind": "text", "text": "bad", "reject_stage": "ingest", "reject_reason": "malformed_json"},
    ]
    out = normalize_batch(schema.records_from_rows(rows), CleanConfig(min_chars=10, max_chars=40, pair_min_chars=2)).to_pylist()
    assert [r["reject_reason"] for r in out] == ["too_short", None, "too_long", "too_short", "malformed_json"]
    assert [r["reject_stage"] for r in out] == ["clean", None, "clean", "clean", "ingest"]
    assert out[1]["text"] == "long enough text here, fine."


def _clean(text: str, kind: str = "text", **kw) -> str | None:
    from sft_ray.clean.normalize import clean_text

    return clean_text(text, kind, CleanConfig(**kw))


def test_mojibake_and_entities_repaired():
    assert _clean("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.") == "The Mona Lisa doesn\u2019t have eyebrows."
    assert _clean("Sch\u00c3\u00b6ne Gr\u00c3\u00bc\u00c3\u009fe") == "Sch\u00f6ne Gr\u00fc\u00dfe"
    assert _clean("AT&amp;T profits &gt; forecast") == "AT&T profits > forecast"
    assert _clean("AT&amp;T", fix_mojibake=False) == "AT&amp;T"


def test_correct_non_latin_text_and_typography_untouched():
    for s in ["\u201eGuten Tag\u201c, sagte sie.", "\u4eca\u65e5\u306f\u3001\uff11\uff12\u6642\u3067\u3059\u3002", "\u00ab Bonjour \u00bb", "Hello \U0001F44D"]:
        assert _clean(s) == s


def test_real_ag_news_markup_residue_removed():
    # Verbatim AG News test row: entity-escaped anchor tags around a ticker.
    raw = 'NEW YORK (Reuters) - Monsanto Co. &lt;A HREF="http://www.investor.reuters.com/FullQuote.aspx?ticker=MON.N target=/stocks/quickinfo/fullquote"&gt;MON.N&lt;/A&gt; on Wednesday said'
    assert _clean(raw) == "NEW YORK (Reuters) - Monsanto Co. MON.N on Wednesday said"
    assert _clean("if a <b and c> d") == "if a <b and c> d"  # not a tag: prose survives


def test_control_characters_removed_but_zwj_kept():
    # Controls and a zero-width space between words separate them; BOM is removed; ZWJ stays.
    assert _clean("a\x00b\x1bc\u200bd\ufeffe\u200df") == "a b c de\u200df"
    assert _clean("NUL\x00byte zero\u200bwidth") == "NUL byte zero width"
    assert _clean("\u0e20\u0e32\u0e29\u0e32\u200b\u0e44\u0e17\u0e22") == "\u0e20\u0e32\u0e29\u0e32\u0e44\u0e17\u0e22"  # Thai: no space


def test_boilerplate_lines_only_on_web_kinds():
    page = "Skip to content\nShare on Facebook\nThe council approved the budget on Monday.\nAdvertisement\nRead more\nAll rights reserved."
    assert _clean(page, "web") == "The council approved the budget on Monday."
    assert _clean(page, "text") == page
    # A content line that merely starts like boilerplate is kept.
    assert _clean("Read more about the budget in the annex, which lists every line item.", "web").startswith("Read more")
