"""Format: curated records -> chat-format SFT examples with a deterministic split."""

from __future__ import annotations

import pyarrow as pa

from sft_ray import schema as S
from sft_ray.config import FormatConfig
from sft_ray.format.split import RESOLUTION, hashed_share, split_key, split_of
from sft_ray.format.templates import examples_for

SFT_COLUMNS = [f.name for f in S.SFT_SCHEMA]


def label_options(curated_labels: dict[str, list[str]]) -> dict[str, list[str]]:
    return {src: sorted(set(v)) for src, v in curated_labels.items()}


TASK_MIX = "task_mix"  # reason of examples left out by format.task_weights
TAGGED_SCHEMA = pa.schema([*S.SFT_SCHEMA, pa.field(S.REJECT_REASON, pa.string()), pa.field(S.DUPLICATE_OF, pa.string())])


def kept_by_weight(example_id: str, weight: float, seed: int) -> bool:
    return hashed_share(example_id, "mix", seed) < weight * RESOLUTION


def format_batch(table: pa.Table, cfg: FormatConfig, options: dict[str, list[str]]) -> pa.Table:
    """Ray Data UDF: curated records -> SFT examples (SFT_SCHEMA with the `split` column, plus the tag
    columns: `task_mix` for examples the task mix leaves out, null otherwise)."""
    S.require_columns(table, [S.ID, S.SOURCE, S.KIND], "format")
    rows = []
    for rec in table.to_pylist():
        tasks = cfg.tasks.get(rec[S.KIND], [])
        split = split_of(split_key(rec[S.KIND], rec[S.ID], rec.get(S.TEXT)), cfg.validation_fraction, cfg.seed)
        for ex_id, task, messages in examples_for(
            rec, tasks, options.get(rec[S.SOURCE], []), cfg.translation_directions == "both", cfg.system_prompt, cfg.seed
        ):
            w = cfg.task_weights.get(task, 1.0)
            reason = None if w >= 1 or kept_by_weight(ex_id, w, cfg.seed) else TASK_MIX
            rows.append({S.ID: ex_id, "task": task, "messages": messages, S.SOURCE: rec[S.SOURCE], "source_id": rec[S.ID], "split": split,
                         S.REJECT_REASON: reason})
    return pa.Table.from_pylist(rows, schema=TAGGED_SCHEMA)
