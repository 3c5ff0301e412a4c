"""Exact dedup of SFT examples: the same conversation, or (SFT-aware) the same prompt.

Record-level dedup (exact.py, near.py) compares documents; two different records can still make
the same training example (one caption paired with several translations makes identical
en->de prompts). Here the formatted examples are compared as conversations:

    on: example   key = every message (prompt + response)
    on: prompt    key = every message before the last assistant turn (same question, any answer)

Keys are blake2b of the messages with whitespace collapsed (and casefolded by default), grouped by a
Ray Data hash shuffle across all blocks, splits and sources; the smallest example id survives, so
the result does not depend on partitioning (docs/ARCHITECTURE.md, principle 4). Templates are picked by a hash
of the input text (format/templates.py), so equal inputs render equal prompts. Removed examples are
tagged `sft_dedup` / `duplicate_example` or `duplicate_prompt` with `duplicate_of`, and the build
writes them to `sft/rejects/` (they are examples, not records, so `rejects/` keeps its meaning:
input records = curated + rejects).
"""

from __future__ import annotations

import hashlib
import json

import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema
from sft_ray.config import SftDedupConfig
from sft_ray.dedup.exact import first_of_runs

STAGE = "sft_dedup"
REASONS = {"example": "duplicate_example", "prompt": "duplicate_prompt"}
EARLIER_STAGES = {"invalid_teacher_output": "teacher", "task_mix": "format"}  # examples rejected before dedup, by reason
EARLIER_STAGES.update(dict.fromkeys(  # synthesize/augment.py REASONS (not imported: dedup does not depend on synthesize)
    ("augment_empty", "augment_identical", "augment_too_long", "augment_unparseable", "augment_content_changed", "augment_failed",
     "augmented_duplicate"), "augment"))
_KEY = "sft_dedup_key"


def example_key(messages: list[dict], on: str, lowercase: bool) -> str:
    """Key of one conversation: all of it, or everything before the last assistant turn."""
    if on == "prompt":
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        messages = messages[:last]
    turns = [(m["role"], " ".join((m["content"] or "").split())) for m in messages]
    payload = json.dumps(turns, ensure_ascii=False)
    return hashlib.blake2b((payload.lower() if lowercase else payload).encode("utf-8"), digest_size=16).hexdigest()


def with_tags(table: pa.Table) -> pa.Table:
    """Formatted examples carry `reject_reason` / `duplicate_of` from here on (null = live); examples
    that arrive already rejected (the teacher's `invalid_teacher_output`) keep theirs."""
    for col in (schema.REJECT_REASON, schema.DUPLICATE_OF):
        if col not in table.column_names:
            table = table.append_column(col, pa.nulls(table.num_rows, pa.string()))
    return table


def add_key(table: pa.Table, cfg: SftDedupConfig) -> pa.Table:
    """Live examples get their key; rejected ones a unique key, so they pass through as singletons."""
    table = with_tags(table)
    live = pc.is_null(table[schema.REJECT_REASON]).to_pylist()
    keys = [example_key(m, cfg.on, cfg.lowercase) if ok else f"rejected\x00{i}"
            for ok, m, i in zip(live, table["messages"].to_pylist(), table[schema.ID].to_pylist())]
    return table.append_column(_KEY, pa.array(keys, pa.string()))


def mark_partition(part: pa.Table, reason: str) -> pa.Table:
    """One hash partition holds every example of its keys: the first id of each key survives."""
    part = part.sort_by([(_KEY, "ascending"), (schema.ID, "ascending")])
    first, dup_of = first_of_runs(part[_KEY].to_numpy(zero_copy_only=False), part[schema.ID].to_numpy(zero_copy_only=False))
    part = part.drop_columns([_KEY])
    dup = pa.array(~first)
    return part.set_column(part.schema.get_field_index(schema.REJECT_REASON), schema.REJECT_REASON,
                           pc.if_else(dup, pa.scalar(reason), part[schema.REJECT_REASON])) \
               .set_column(part.schema.get_field_index(schema.DUPLICATE_OF), schema.DUPLICATE_OF,
                           pc.if_else(dup, pa.array(dup_of.tolist(), pa.string()), part[schema.DUPLICATE_OF]))


def sft_dedup(sft: ray.data.Dataset, cfg: SftDedupConfig, num_partitions: int) -> ray.data.Dataset:
    """SFT examples + `reject_reason` / `duplicate_of` (null for survivors). Nothing is dropped here."""
    if not cfg.enabled:
        return sft.map_batches(with_tags, batch_format="pyarrow")
    keyed = sft.map_batches(add_key, batch_format="pyarrow", fn_kwargs={"cfg": cfg})
    parts = keyed.repartition(num_partitions, keys=[_KEY])
    return parts.map_batches(mark_partition, batch_format="pyarrow", batch_size=None, fn_kwargs={"reason": REASONS[cfg.on]})


def survivors(table: pa.Table, split: str) -> pa.Table:
    """Live examples of one split, in the sft/ output schema."""
    keep = pc.and_(pc.is_null(table[schema.REJECT_REASON]), pc.equal(table["split"], split))
    return table.filter(keep).select(schema.SFT_OUTPUT_SCHEMA.names)


def removed(table: pa.Table) -> pa.Table:
    """Removed examples in the rejects schema: text is the conversation as JSON, meta names the
    task, split and source record."""
    t = table.filter(pc.is_valid(table[schema.REJECT_REASON]))
    n = t.num_rows
    stages = [EARLIER_STAGES.get(r, STAGE) for r in t[schema.REJECT_REASON].to_pylist()]
    meta = [json.dumps({"task": k, "split": s, "source_id": r}) for k, s, r in zip(t["task"].to_pylist(), t["split"].to_pylist(), t["source_id"].to_pylist())]
    text = [json.dumps(m, ensure_ascii=False) for m in t["messages"].to_pylist()]
    return pa.table(
        {
            schema.ID: t[schema.ID], schema.SOURCE: t[schema.SOURCE], schema.KIND: pa.array(["sft"] * n, pa.string()), "stage": pa.array(stages, pa.string()),
            "reason": t[schema.REJECT_REASON], schema.DUPLICATE_OF: t[schema.DUPLICATE_OF], schema.TEXT: pa.array(text, pa.string()), schema.META: pa.array(meta, pa.string()),
        },
        schema=schema.REJECT_SCHEMA,
    )
