"""write.py: file names stable for the same records and distinct for different blocks (even slices);
the one pass's cluster member rows on the driver or distributed by their size."""

from __future__ import annotations

from sft_ray import schema
from sft_ray.write import block_name


def _records(n: int):
    return schema.records_from_rows([{"id": f"s-{i}", "source": "s", "kind": "text", "text": f"t{i}",
                                      "meta": f'{{"line": {i}}}'} for i in range(n)])


def test_slices_of_one_table_get_different_names_and_a_copy_the_same():
    t = _records(10)
    a, b = t.slice(0, 5), t.slice(5, 5)  # same parent buffers, same length
    assert block_name(a) != block_name(b)
    assert block_name(a) == block_name(_records(10).slice(0, 5)) == block_name(a.combine_chunks())


def test_the_one_pass_keeps_few_cluster_members_on_the_driver_and_many_distributed(ray_local, tmp_path, monkeypatch):
    """write_records returns the clusters' member rows as a table while they are small (the report
    sums them without a shuffle) and as a Dataset above MEMBERS_ON_DRIVER_BYTES; the rows are the same."""
    import pyarrow as pa
    import ray

    from sft_ray import write

    rows = [{"id": f"s-{i}", "source": "s", "kind": "text", "text": f"t{i % 7}", "meta": f'{{"line": {i}}}',
             **({"reject_stage": "dedup", "reject_reason": "exact_duplicate", "duplicate_of": f"s-{i % 7}"} if i >= 7 else {})}
            for i in range(40)]
    records = ray.data.from_arrow([schema.records_from_rows(rows[:20]), schema.records_from_rows(rows[20:])])
    small = write.write_records(records, str(tmp_path / "a"), {})
    monkeypatch.setattr(write, "MEMBERS_ON_DRIVER_BYTES", 0)
    large = write.write_records(records, str(tmp_path / "b"), {})
    assert isinstance(small.members, pa.Table) and isinstance(large.members, ray.data.Dataset)
    key = lambda r: (r["group"], r["reason"], r["n"])  # noqa: E731
    assert sorted(small.members.to_pylist(), key=key) == sorted(large.members.take_all(), key=key)
    assert sum(r["n"] for r in small.members.to_pylist()) == 33 and small.counts == large.counts
