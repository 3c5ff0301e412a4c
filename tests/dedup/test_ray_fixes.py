"""Ray Data's hash shuffle when a whole task outputs no rows (sft_ray/ray_fixes.py). The case that
found it, near dedup over a translation-only block, is the demo build (tests/test_demo.py)."""

from __future__ import annotations

import pyarrow as pa

from sft_ray import ray_fixes


def test_zero_column_empty_shards_are_left_out_of_the_reduce():
    real = pa.table({"k": pa.array([2, 1], pa.uint64()), "id": ["b", "a"]})
    nothing = pa.table({})  # the empty shard of a map task whose inputs had no rows (no schema)
    (out,) = ray_fixes.concat_reduce(0, [[nothing, real, nothing, real.slice(0, 1)]])
    assert out.schema == real.schema and out.column("id").to_pylist() == ["b", "a", "b"]
    assert list(ray_fixes.concat_reduce(0, [[nothing, nothing]])) == [nothing]  # all empty: as Ray does
    assert list(ray_fixes.concat_reduce(0, [[]])) == []


def test_install_replaces_the_reduce_the_planner_uses():
    from ray.data._internal.planner import plan_all_to_all_op

    ray_fixes.install()
    assert plan_all_to_all_op._concat_reduce is ray_fixes.concat_reduce
