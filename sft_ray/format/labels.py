"""Which label a record's classification or sentiment example is trained on, and where it came from.

A labelled task's target is, in order of precedence (docs/ARCHITECTURE.md, "Labels become data"):

    gold    the source's own `label` column                                     label_confidence null
    human   a person's label, <output>/labels/human.jsonl (label/studio.py)     label_confidence null
    model   the label stage's prediction (`topic`, `sentiment`) when its         label_confidence = the score
            calibrated score is >= format.min_label_confidence.<task>

so a source with gold labels keeps them, and an unlabelled news or web corpus still yields
classification data from the topic labeler. A record with none of the three yields no example for the
task (it is not a reject: the record stays in curated/ and serves its other tasks). A model label must
be one of the task's options (the source's label names, else the labeler's classes), so an example
never asks for one set of classes and answers with another.
"""

from __future__ import annotations

from sft_ray import schema
from sft_ray.config.format import LabelConfidenceConfig

TASK_LABELER = {"classification": schema.TOPIC, "sentiment": schema.SENTIMENT}
"""The labeled tasks and the labeler (`label.<name>`, schema.LABELERS) whose predictions may serve as their targets."""

Target = tuple[str, str, float | None]  # (label, label_source, label_confidence)


def label_target(rec: dict, task: str, human: dict[str, dict[str, str]], thresholds: LabelConfidenceConfig,
                 options: list[str]) -> Target | None:
    """The target of `task` (a key of TASK_LABELER) for one curated record, or None.

    `human`: labeler -> {record id: label} (label/studio.py read_human_labels); `options`: the classes
    the example offers (a model label outside them is not used).
    """
    if rec.get(schema.LABEL):
        return rec[schema.LABEL], schema.GOLD, None
    labeler = TASK_LABELER[task]
    by_person = human.get(labeler, {}).get(rec[schema.ID])
    if by_person:
        return by_person, schema.HUMAN, None
    threshold = getattr(thresholds, task)
    label, score = rec.get(labeler), rec.get(f"{labeler}_score")
    if threshold is None or not label or score is None or score < threshold or (options and label not in options):
        return None
    return label, schema.MODEL, float(score)


def label_source_counts_batch(table):
    """Ray Data UDF: (task, label_source, n) of a batch's kept examples (no reject reason)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kept = table.filter(pc.is_null(table[schema.REJECT_REASON])) if schema.REJECT_REASON in table.column_names else table
    if kept.num_rows == 0:
        return pa.table({"task": pa.array([], pa.string()), schema.LABEL_SOURCE: pa.array([], pa.string()), "n": pa.array([], pa.int64())})
    g = kept.select(["task", schema.LABEL_SOURCE]).group_by(["task", schema.LABEL_SOURCE]).aggregate([([], "count_all")])
    return pa.table({"task": g["task"], schema.LABEL_SOURCE: g[schema.LABEL_SOURCE], "n": g["count_all"].cast(pa.int64())})


def fold_label_sources(rows) -> dict[str, dict[str, int]]:
    """{task: {label_source: kept examples}} from the per-block rows of `label_source_counts_batch`
    (gathered by write_sft.py's one pass), for the manifest's `sft.label_sources`: how much of the
    training data the labelers, people and the teacher wrote."""
    out: dict[str, dict[str, int]] = {}
    for r in rows:
        by = out.setdefault(r["task"], {})
        key = r[schema.LABEL_SOURCE] or "unknown"
        by[key] = by.get(key, 0) + int(r["n"])
    return {t: dict(sorted(v.items())) for t, v in sorted(out.items())}
