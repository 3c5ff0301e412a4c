"""Label quality against gold, from the label heads' held-out (out-of-fold) predictions.

classifier.fit_head cross-validates on the seed set: every seed row is predicted by a head fitted
without it, so accuracy, per-class precision/recall/F1 and the confusion matrix below are held-out
numbers (manifest["label"][name]: cv_accuracy, cv_per_class, cv_confusion).
"""

from __future__ import annotations


def label_quality(label_info: dict) -> dict:
    """Per labeler: gold rows, folds, accuracy, macro F1, per-class P/R/F1/support and the confusion matrix."""
    out = {}
    for name, info in sorted((label_info or {}).items()):
        per_class = info.get("cv_per_class")
        if not per_class:  # too few seed rows per class for cross-validation: no held-out predictions
            continue
        out[name] = {
            "gold": "seed set, k-fold cross-validation (out-of-fold predictions)",
            "rows": info.get("rows"),
            "folds": info.get("cv_folds"),
            "accuracy": info.get("cv_accuracy"),
            "macro_f1": round(sum(c["f1"] for c in per_class.values()) / len(per_class), 4),
            "per_class": per_class,
            "labels": list(per_class),
            "confusion": info.get("cv_confusion"),
        }
    return out
