"""A workaround for one Ray Data 2.60 bug, installed by `init_ray` (runtime.py) and the build.

A Ray Data task that outputs no rows emits an empty block *with no columns* (a map over a bundle of
empty blocks, or a UDF that yields nothing). When such a block is the first input of a hash-shuffle
map task (`repartition(n, keys=...)`), that task encodes its empty shards with the zero-column
schema, and the reduce concatenates them with the other tasks' real shards:
`pyarrow.lib.ArrowInvalid: Schema at index 1 was different` (ray/data/_internal/execution/operators/
hash_shuffle_v2.py `_concat_reduce`). It happens whenever a whole task's records take no part in a
shuffle, e.g. near dedup over a translation-only block: the embedded demo's build failed so
(tests/test_demo.py). Whether a run meets it depends on how Ray bundles blocks into tasks.

The fix replaces the reduce function the planner hands to the reduce tasks (looked up when a plan
is built, on the driver) with `concat_reduce`, which leaves out zero-column empty shards. It is a
module-level function of this package, so the reduce tasks import it by name.
"""

from __future__ import annotations

from typing import Iterable

import pyarrow as pa


def concat_reduce(partition_id: int, tables_by_input: list[list[pa.Table]]) -> Iterable[pa.Table]:
    """Ray's `_concat_reduce`, without the zero-column empty shards of tasks that output nothing."""
    tables = tables_by_input[0]
    if any(t.num_columns for t in tables):
        tables = [t for t in tables if t.num_columns]
    if not tables:
        return
    yield pa.concat_tables(tables) if len(tables) > 1 else tables[0]


def install() -> None:
    """Idempotent; a Ray without the patched name (a newer layout) is left as it is."""
    try:
        from ray.data._internal.planner import plan_all_to_all_op
    except ImportError:
        return
    if getattr(plan_all_to_all_op, "_concat_reduce", None) is not None:
        plan_all_to_all_op._concat_reduce = concat_reduce
