"""The clean stage's heuristics as a pass/fail quality judge (tools/clean_heuristics.py, the peer of
the quality labeler in benchmarks/quality_score.py): short texts fail on size by default, menus fail
on line rules."""

from __future__ import annotations

from sft_ray.config import CleanConfig
from tools.clean_heuristics import judge, size_rules_off

ARTICLE = ("The city council voted on Tuesday to extend the bus network to the new housing estates in the north. "
           "The plan, which had been debated for two years, adds four routes and is paid for by a regional grant. "
           "Residents had complained that the nearest stop was a half-hour walk away.")
MENU = "Home\nNews\nSport\nWeather\nContact us\nPrivacy Policy\nCookie settings"


def test_heuristics_peer_fails_menus_and_short_text_and_passes_articles_without_size_rules():
    assert judge(MENU, CleanConfig()) is not None and judge(MENU, size_rules_off()) is not None
    assert judge(ARTICLE, CleanConfig()) == "c4_too_few_sentences"  # 3 sentences; C4 wants a page of 5
    assert judge(ARTICLE, size_rules_off()) is None
