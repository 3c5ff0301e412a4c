"""Format: curated records -> chat-format SFT examples, on the side of the split their record is on."""

from __future__ import annotations

import pyarrow as pa

from sft_ray import schema
from sft_ray.config import FormatConfig, SourceConfig
from sft_ray.format.labels import TASK_LABELER, label_target
from sft_ray.format.split import RESOLUTION, hashed_share
from sft_ray.format.templates import examples_for

SFT_COLUMNS = [f.name for f in schema.SFT_SCHEMA]


def label_options(sources: list[SourceConfig], labels_seen: dict[str, dict]) -> dict[str, list[str]]:
    """Classification options per source: the configured label names, else the labels seen
    (`labels_seen`: source -> {label: count}, the manifest's `counts["labels"]`)."""
    out = {}
    for src in sources:
        names = list(dict.fromkeys(src.label_names.values())) or sorted(labels_seen.get(src.name, {}))
        if names:
            out[src.name] = names
    return out


TASK_MIX = "task_mix"  # reason of examples left out by format.task_weights
TAGGED_SCHEMA = pa.schema([*schema.SFT_SCHEMA, pa.field(schema.REJECT_REASON, pa.string()), pa.field(schema.DUPLICATE_OF, pa.string())])


def kept_by_weight(example_id: str, weight: float, seed: int) -> bool:
    return hashed_share(example_id, "mix", seed) < weight * RESOLUTION


def format_batch(table: pa.Table, cfg: FormatConfig, options: dict[str, list[str]], model_options: dict[str, list[str]] | None = None,
                 human: dict[str, dict[str, str]] | None = None) -> pa.Table:
    """Ray Data UDF: curated records -> SFT examples (SFT_SCHEMA with the record's `split`, plus the tag
    columns: `task_mix` for examples the task mix leaves out, null otherwise).

    `options`: source -> classes offered (label_options); `model_options`: labeler -> its classes, the
    options of a source that has none; `human`: labeler -> {record id: label} from Label Studio. The
    targets of classification and sentiment follow format/labels.py (gold > human > model); every
    example carries `label_source` and `label_confidence`."""
    schema.require_columns(table, [schema.ID, schema.SOURCE, schema.KIND, schema.SPLIT], "format")
    model_options, human = model_options or {}, human or {}
    rows = []
    for rec in table.to_pylist():
        tasks = cfg.tasks.get(rec[schema.KIND], [])
        split = rec[schema.SPLIT]
        if split is None:
            raise ValueError(f"format: record {rec[schema.ID]} has no split (the build assigns it after dedup: format/split.py assign_split)")
        opts = options.get(rec[schema.SOURCE], [])
        labels: dict[str, str | None] = {}
        provenance: dict[str, tuple[str | None, float | None]] = {}
        for task in tasks:
            if task in TASK_LABELER:
                opts = options.get(rec[schema.SOURCE]) or model_options.get(TASK_LABELER[task], [])
                target = label_target(rec, task, human, cfg.min_label_confidence, opts)
                labels[task] = target[0] if target else None
                provenance[task] = (target[1], target[2]) if target else (None, None)
        for ex_id, task, messages in examples_for(
            rec, tasks, opts, cfg.translation_directions == "both", cfg.system_prompt, cfg.seed, labels=labels
        ):
            w = cfg.task_weights.get(task, 1.0)
            reason = None if w >= 1 or kept_by_weight(ex_id, w, cfg.seed) else TASK_MIX
            label_source, confidence = provenance.get(task, (schema.GOLD, None))
            rows.append({schema.ID: ex_id, "task": task, "messages": messages, schema.SOURCE: rec[schema.SOURCE], "source_id": rec[schema.ID], schema.SPLIT: split,
                         schema.LABEL_SOURCE: label_source, schema.LABEL_CONFIDENCE: confidence, schema.REJECT_REASON: reason})
    return pa.Table.from_pylist(rows, schema=TAGGED_SCHEMA)
