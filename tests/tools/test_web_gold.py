"""The derived gold of Readability's test pages (tools/web_gold.py) holds main-content sentences
and boilerplate lines, not the other way round."""

from __future__ import annotations

from tools import web_gold


def test_readability_gold_derivation_on_cnn():
    with_, without = web_gold.readability_gold(web_gold.WEB / "readability_test_pages" / "cnn")
    assert len(with_) == web_gold.MAX_SNIPPETS and len(without) >= 10
    assert any("Stanford University's Center on Poverty and Inequality" in s for s in with_)
    assert any(s.startswith("©") or "All Rights Reserved" in s for s in without)
    assert not set(with_) & set(without)
