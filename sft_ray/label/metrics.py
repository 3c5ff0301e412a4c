"""How well a labeler's scores rank and are calibrated: ROC-AUC and expected calibration error.

Used to judge heads on held-out rows (tests, benchmarks/label_quality.py); the build does not call them.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """P(a random positive scores above a random negative), ties counted half (Mann-Whitney U / n+ n-)."""
    pos, neg = score[positive], score[~positive]
    if not len(pos) or not len(neg):
        return float("nan")
    greater = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    return float(greater / (len(pos) * len(neg)))


def expected_calibration_error(conf: np.ndarray, correct: np.ndarray, bins: int = 15) -> float:
    """Guo et al. 2017, eq. 3: sum over equal-width confidence bins of |accuracy - confidence|,
    weighted by the bin's share of rows. `conf` is a probability (of the predicted label, or of the
    positive class with `correct` = is positive); the first bin includes 0."""
    edges, ece = np.linspace(0, 1, bins + 1), 0.0
    for lo, hi in pairwise(edges):
        m = (conf > lo) & (conf <= hi) if lo > 0 else (conf >= lo) & (conf <= hi)
        if m.any():
            ece += m.mean() * abs(correct[m].mean() - conf[m].mean())
    return float(ece)
