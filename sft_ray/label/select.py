"""The label stage's select step: act on labels whose calibrated confidence is below threshold.

Tag, then select (Dolma's taggers + mixer): the labelers only wrote scores; this stateless step
turns `<name>_score < min_confidence` into either a reject (stage `label`, reason
`low_label_confidence`, counted in the manifest) or, with action `flag`, a flag
`low_<name>_confidence` in `label_flags` on a row that stays live.
"""

from __future__ import annotations

import pyarrow as pa

from sft_ray.config import LabelConfig
from sft_ray.label.labelers import LABEL_FLAGS, ensure_label_columns, score_column
from sft_ray.tags import live_mask, set_columns, tag

STAGE = "label"
LOW_CONFIDENCE = "low_label_confidence"


def select_batch(table: pa.Table, cfg: LabelConfig) -> pa.Table:
    """Ray Data UDF (pyarrow batch in, same rows out)."""
    table = ensure_label_columns(table)
    for name in ("topic", "sentiment"):
        lcfg = getattr(cfg, name)
        if not lcfg.enabled:
            continue
        scores = table[score_column(name)].to_pylist()
        low = [s is not None and s < lcfg.min_confidence for s in scores]
        if not any(low):
            continue
        if lcfg.action == "reject":
            table = tag(table, STAGE, [LOW_CONFIDENCE if x else None for x in low])
        else:
            live = live_mask(table).to_pylist()
            flags = table[LABEL_FLAGS].to_pylist()
            flag = f"low_{name}_confidence"
            table = set_columns(table, {LABEL_FLAGS: [
                (f"{f},{flag}" if f else flag) if x and ok else f for f, x, ok in zip(flags, low, live)
            ]})
    return table
