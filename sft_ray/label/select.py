"""The label stage's select step: act on label scores below a labeler's threshold.

Tag, then select (Dolma's taggers + mixer): the labelers only wrote scores; this stateless step
turns a low score into either a reject (stage `label`, counted in the manifest) or, with action
`flag`, a flag in `label_flags` on a row that stays live. Each labeler's rule is plain data on its
config (sft_ray/config/label.py): `threshold`, `reject_reason`, `flag`:

    topic, sentiment   <name>_score < min_confidence  reason low_label_confidence  flag low_<name>_confidence
    quality            quality_score < min_quality    reason low_quality           flag low_quality

Low confidence says the label is unsure; low quality says the text looks like boilerplate.
"""

from __future__ import annotations

import pyarrow as pa

from sft_ray.config import LabelConfig
from sft_ray.label.labelers import LABEL_FLAGS, add_flags, ensure_label_columns, score_column
from sft_ray.tags import live_mask, set_columns, tag

STAGE = "label"


def select_batch(table: pa.Table, cfg: LabelConfig) -> pa.Table:
    """Ray Data UDF (pyarrow batch in, same rows out)."""
    table = ensure_label_columns(table)
    for name, lcfg in cfg.labelers().items():
        if not lcfg.enabled:
            continue
        scores = table[score_column(name)].to_pylist()
        low = [s is not None and s < lcfg.threshold for s in scores]
        if not any(low):
            continue
        if lcfg.action == "reject":
            table = tag(table, STAGE, [lcfg.reject_reason if x else None for x in low])
        else:
            live = live_mask(table).to_pylist()
            rows = [i for i, (x, ok) in enumerate(zip(low, live)) if x and ok]
            table = set_columns(table, {LABEL_FLAGS: add_flags(table[LABEL_FLAGS].to_pylist(), rows, lcfg.flag)})
    return table
