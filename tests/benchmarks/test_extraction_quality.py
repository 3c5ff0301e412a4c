"""The extraction benchmark runs end to end on one page per gold corpus, and its derived gold
(readability pages) holds main-content sentences and boilerplate lines, not the other way round."""

from __future__ import annotations

from benchmarks import extraction_quality as bench


def test_readability_gold_derivation_on_cnn():
    with_, without = bench.readability_gold(bench.WEB / "readability_test_pages" / "cnn")
    assert len(with_) == bench.MAX_SNIPPETS and len(without) >= 10
    assert any("Stanford University's Center on Poverty and Inequality" in s for s in with_)
    assert any(s.startswith("©") or "All Rights Reserved" in s for s in without)
    assert not set(with_) & set(without)


def test_benchmark_runs_and_scores(capsys):
    summary = bench.main(["--variants", "resiliparse", "--limit", "1", "--per-page"])
    out = capsys.readouterr().out
    assert "| resiliparse | all | 2 |" in out and "### Per page" in out
    assert 0 <= summary[("resiliparse", "all")]["with"] <= 1
