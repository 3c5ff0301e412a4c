"""Shuffle partitions from bytes (dedup/partitions.py) and the streamed build's size estimate
(staging.py), without Ray; and `by_key`, the partitioning every dedup shuffle goes through, on Ray."""

from __future__ import annotations

import pytest

from sft_ray.config import DedupConfig
from sft_ray.dedup.partitions import partitions_for, resolve
from sft_ray.staging import Unit, listed_bytes

MiB = 2**20


def test_default_config_sizes_from_bytes():
    cfg = DedupConfig()
    assert cfg.num_partitions is None and cfg.partition_bytes == 512 * MiB
    assert partitions_for(0, cfg) == 1  # an empty or tiny corpus is one task, not eight
    assert partitions_for(1, cfg) == 1
    assert partitions_for(512 * MiB, cfg) == 1
    assert partitions_for(512 * MiB + 1, cfg) == 2  # rounded up: no partition above partition_bytes
    assert partitions_for(10 * 2**30, cfg) == 20
    assert partitions_for(2**40, cfg) == 2048  # 1 TiB: 2048 partitions of 512 MiB


def test_rounding_and_the_cap():
    cfg = DedupConfig(partition_bytes=1000, max_partitions=50)
    assert [partitions_for(n, cfg) for n in (999, 1000, 1001, 2500, 49_999, 50_001, 10**9)] == [1, 1, 2, 3, 50, 50, 50]


def test_explicit_num_partitions_wins():
    cfg = DedupConfig(num_partitions=3, partition_bytes=1)
    assert partitions_for(0, cfg) == partitions_for(10**12, cfg) == 3


class _Sized:
    """Stands in for a materialized Dataset: only size_bytes() is asked."""

    def __init__(self, n):
        self.n = n

    def size_bytes(self):
        return self.n


def test_a_dataset_is_measured_by_its_size_bytes():
    assert partitions_for(_Sized(3 * MiB), DedupConfig(partition_bytes=MiB)) == 3
    assert partitions_for(_Sized(None), DedupConfig()) == 1  # size unknown to Ray: one partition


def test_resolve_fixes_the_count_and_records_it():
    cfg, info = resolve(DedupConfig(partition_bytes=MiB), 5 * MiB + 1, "staged parquet")
    assert cfg.num_partitions == 6 and cfg.partition_bytes == MiB
    assert info == {"partitions": 6, "from": "bytes", "bytes": 5 * MiB + 1, "measured_on": "staged parquet", "partition_bytes": MiB}
    cfg, info = resolve(DedupConfig(num_partitions=2), 10**12, "listed inputs")
    assert cfg.num_partitions == 2 and info["partitions"] == 2 and info["from"] == "num_partitions"


@pytest.mark.parametrize("bad", [{"num_partitions": 0}, {"partition_bytes": 0}, {"max_partitions": 0}])
def test_counts_and_sizes_are_positive(bad):
    with pytest.raises(ValueError):
        DedupConfig(**bad)


def test_listed_bytes_expands_compressed_inputs():
    def item(url, size):
        return {"url": url, "size": size}

    todo = [Unit("a", "a-1", [item("data/a.jsonl", 100), item("s3://b/a.jsonl.gz", 100)]),
            Unit("b", "b-1", [item("x.parquet", 10), item("y.tsv.zst", 10), item("z.csv", 7)])]
    assert listed_bytes(todo) == 100 + 400 + 40 + 40 + 7
    assert listed_bytes([]) == 0


def test_by_key_keeps_every_key_in_one_block_with_and_without_hashing(ray_local):
    """The shuffles' contract: one block per partition holding all rows of its keys. One partition
    is one block of every row (no hash shuffle), even above Ray's target block size; several are a
    hash shuffle; a placed build (label selector set) keeps the hash shuffle for one partition too."""
    import numpy as np
    import pyarrow as pa
    import ray

    from sft_ray.dedup.partitions import by_key

    def blocks(ds):
        return [pa.concat_tables([t]) for t in ray.get(ds.materialize().to_arrow_refs()) if t.num_rows]

    ctx = ray.data.DataContext.get_current()
    old_size, old_selector = ctx.target_max_block_size, ctx.execution_options.label_selector
    try:
        ctx.target_max_block_size = 1 * MiB  # 3 MiB of rows in 6 input blocks
        rows = pa.table({"k": np.arange(60_000) % 97, "v": np.arange(60_000, dtype=np.float64), "w": np.ones(60_000) * 2})
        ds = ray.data.from_arrow([rows.slice(i * 10_000, 10_000) for i in range(6)])
        assert by_key(ds, 1, ["k"])._logical_plan.dag.keys is None  # a plain repartition, no hashing
        one = blocks(by_key(ds, 1, ["k"]))
        assert len(one) == 1 and one[0].num_rows == 60_000 and one[0].nbytes > ctx.target_max_block_size
        many = blocks(by_key(ds, 4, ["k"]))
        assert sum(b.num_rows for b in many) == 60_000 and 1 < len(many) <= 4
        owners = [set(b["k"].to_pylist()) for b in many]
        assert all(not (a & b) for i, a in enumerate(owners) for b in owners[i + 1:])  # no key split across blocks
        ctx.execution_options.label_selector = {"sft-ray-role": "curation"}
        assert by_key(ds, 1, ["k"])._logical_plan.dag.keys == ["k"]  # the hash shuffle, which passes the selector on
    finally:
        ctx.target_max_block_size, ctx.execution_options.label_selector = old_size, old_selector
