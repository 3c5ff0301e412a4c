"""The quality benchmark's own parts, without a model: the heuristics peer judges like the clean
stage (short texts fail on size by default, menus fail on line rules), and ROC-AUC is Mann-Whitney."""

from __future__ import annotations

import numpy as np

from benchmarks.peers.clean_heuristics import judge, size_rules_off
from benchmarks.quality_score import roc_auc
from sft_ray.config import CleanConfig

ARTICLE = ("The city council voted on Tuesday to extend the bus network to the new housing estates in the north. "
           "The plan, which had been debated for two years, adds four routes and is paid for by a regional grant. "
           "Residents had complained that the nearest stop was a half-hour walk away.")
MENU = "Home\nNews\nSport\nWeather\nContact us\nPrivacy Policy\nCookie settings"


def test_heuristics_peer_fails_menus_and_short_text_and_passes_articles_without_size_rules():
    assert judge(MENU, CleanConfig()) is not None and judge(MENU, size_rules_off()) is not None
    assert judge(ARTICLE, CleanConfig()) == "c4_too_few_sentences"  # 3 sentences; C4 wants a page of 5
    assert judge(ARTICLE, size_rules_off()) is None


def test_roc_auc_counts_ties_half():
    y = np.array([True, True, False, False])
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 0.0
    assert roc_auc(np.array([1.0, 0.0, 1.0, 0.0]), y) == 0.5  # a pass/fail judge: (TPR + TNR) / 2
