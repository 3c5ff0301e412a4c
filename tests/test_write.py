"""write.py's file names: stable for the same records, distinct for different blocks (even slices)."""

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
