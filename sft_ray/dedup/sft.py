"""Exact dedup of SFT examples: the same conversation, or (SFT-aware) the same prompt.

Record-level dedup (exact.py, near.py) compares documents; two different records can still make
the same training example (one caption paired with several translations makes identical
en->de prompts). Here the formatted examples are compared as conversations:

    on: example   key = every message (prompt + response)
    on: prompt    key = every message before the last assistant turn (same question, any answer)

Keys are 128-bit blake2b of the messages with whitespace collapsed (and casefolded by default),
grouped by a Ray Data hash shuffle across all blocks, splits and sources; the smallest example id
survives, so the result does not depend on partitioning (docs/ARCHITECTURE.md, principle 4). As in
record dedup (exact.py, removals.py), only (key, id, row id) are shuffled, never the conversations:
the losers form a removal list, written per block under the step folder and applied to the examples
by a map. So the largest task holds one partition of ~60-byte key rows, and the partition count
comes from the keys' bytes (dedup/partitions.py), not the examples'. (Shuffling whole examples made
one reduce task hold every example of a 100k-document build: 2.2 GiB,
benchmarks/results/scale_stop28.json.) Templates are picked by a hash of the input text
(format/templates.py), so equal inputs render equal prompts. Removed examples are
tagged `sft_dedup` / `duplicate_example` or `duplicate_prompt` with `duplicate_of`, and the build
writes them to `sft/rejects/` (they are examples, not records, so `rejects/` keeps its meaning:
input records = curated + rejects).
"""

from __future__ import annotations

import hashlib
import json
import uuid

import pyarrow as pa
import pyarrow.compute as pc
import ray

from sft_ray import schema, storage
from sft_ray.config import DedupConfig, SftDedupConfig
from sft_ray.dedup.exact import first_of_runs
from sft_ray.dedup.partitions import by_key, partitions_for
from sft_ray.dedup.removals import REMOVAL_SCHEMA, ROW, Step, apply_removals, removal_table, scratch_root, with_row_ids
from sft_ray.tags import live_mask

STAGE = "sft_dedup"
REASONS = {"example": "duplicate_example", "prompt": "duplicate_prompt"}
EARLIER_STAGES = {"invalid_teacher_output": "teacher", "task_mix": "format"}  # examples rejected before dedup, by reason
EARLIER_STAGES.update(dict.fromkeys(  # synthesize/augment.py REASONS (not imported: dedup does not depend on synthesize)
    ("augment_empty", "augment_identical", "augment_too_long", "augment_unparseable", "augment_content_changed", "augment_failed",
     "augmented_duplicate"), "augment"))
_KEY = "sft_dedup_key"
# Bytes of one key row in Arrow: 16-byte key + 8-byte row id + an id of ~30 characters with its
# 4-byte offset. The partition count is sized from count x this (the count of the materialised
# examples is metadata), so the keys need no pass of their own to be measured.
KEY_ROW_BYTES = 60


def example_key(messages: list[dict], on: str, lowercase: bool) -> bytes:
    """Key of one conversation: all of it, or everything before the last assistant turn."""
    if on == "prompt":
        last = max((i for i, m in enumerate(messages) if m["role"] == "assistant"), default=len(messages))
        messages = messages[:last]
    turns = [(m["role"], " ".join((m["content"] or "").split())) for m in messages]
    payload = json.dumps(turns, ensure_ascii=False)
    return hashlib.blake2b((payload.lower() if lowercase else payload).encode("utf-8"), digest_size=16).digest()


def with_tags(table: pa.Table) -> pa.Table:
    """Formatted examples carry `reject_reason` / `duplicate_of` from here on (null = live); examples
    that arrive already rejected (the teacher's `invalid_teacher_output`) keep theirs."""
    for col in (schema.REJECT_REASON, schema.DUPLICATE_OF):
        if col not in table.column_names:
            table = table.append_column(col, pa.nulls(table.num_rows, pa.string()))
    return table


def key_rows(table: pa.Table, cfg: SftDedupConfig) -> pa.Table:
    """(key, id, row id) of the live examples: all that the shuffle moves. Examples rejected before
    dedup are not keyed, so they are never anyone's duplicate and keep their reason."""
    t = table.filter(live_mask(table))
    keys = [example_key(m, cfg.on, cfg.lowercase) for m in t["messages"].to_pylist()]
    return pa.table({_KEY: pa.array(keys, pa.binary(16)), schema.ID: t[schema.ID], ROW: t[ROW]})


def mark_partition(part: pa.Table, reason: str) -> pa.Table:
    """One hash partition holds every example of its keys: the first id of each key survives, the
    others become removal rows pointing at it."""
    if part.num_rows == 0:
        return REMOVAL_SCHEMA.empty_table()
    part = part.sort_by([(_KEY, "ascending"), (schema.ID, "ascending")])
    first, dup_of = first_of_runs(part[_KEY].to_numpy(zero_copy_only=False), part[schema.ID].to_numpy(zero_copy_only=False))
    lose = ~first
    return removal_table(part[ROW].to_numpy()[lose], reason, dup_of[lose].tolist())


def sft_dedup(sft: ray.data.Dataset, cfg: SftDedupConfig, partitions: int | DedupConfig, root: str | None = None,
              storage_options: dict | None = None) -> ray.data.Dataset:
    """SFT examples + `reject_reason` / `duplicate_of` (null for survivors), materialised. Nothing is
    dropped here. `partitions`: a fixed shuffle partition count, or the dedup config that sizes it
    from the key rows' bytes. The removal list goes to `root`/sft (a build's `_work/dedup`), else
    to a scratch folder removed before returning."""
    tagged = sft.map_batches(with_tags, batch_format="pyarrow").materialize()
    if not cfg.enabled or tagged.count() == 0:  # the count of a materialised Dataset is metadata
        return tagged
    tagged = with_row_ids(tagged)  # block ordinal << 32 | row: the join key of the removal list
    keys = tagged.map_batches(key_rows, batch_format="pyarrow", fn_kwargs={"cfg": cfg})
    n = partitions if isinstance(partitions, int) else partitions_for(tagged.count() * KEY_ROW_BYTES, partitions)
    removals = by_key(keys, n, [_KEY]).map_batches(mark_partition, batch_format="pyarrow", batch_size=None,
                                                             fn_kwargs={"reason": REASONS[cfg.on]})
    folder = root or scratch_root()
    step = Step(folder, "sft", storage_options or {}, fingerprint=uuid.uuid4().hex)  # examples are rebuilt each run: never reused
    try:
        step.write(removals, n)
        return apply_removals(tagged, [step], STAGE).drop_columns([ROW]).materialize()
    finally:
        storage.remove(folder if root is None else step.dir, step.storage_options)


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
