"""Scores of a labeler on held-out rows: ROC-AUC is Mann-Whitney, ECE is Guo et al.'s."""

from __future__ import annotations

import numpy as np
import pytest

from sft_ray.label.metrics import expected_calibration_error, roc_auc


def test_roc_auc_counts_ties_half():
    y = np.array([True, True, False, False])
    assert roc_auc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 1.0
    assert roc_auc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 0.0
    assert roc_auc(np.array([1.0, 0.0, 1.0, 0.0]), y) == 0.5  # a pass/fail judge: (TPR + TNR) / 2


def test_ece_weighs_each_bin_by_its_rows_and_counts_zero_confidence():
    assert expected_calibration_error(np.array([0.0, 0.0, 1.0, 1.0]), np.array([False, False, True, True])) == 0.0
    assert expected_calibration_error(np.array([0.9, 0.9]), np.array([True, False])) == pytest.approx(0.4)
    # two bins, half the rows each: |0.5 - 0.25| and |1.0 - 0.95|
    conf, correct = np.array([0.25, 0.25, 0.95, 0.95]), np.array([True, False, True, True])
    assert expected_calibration_error(conf, correct) == pytest.approx(0.5 * 0.25 + 0.5 * 0.05)
