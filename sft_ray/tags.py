"""Tag, then select: the one place that marks records as rejected (STYLE.md habit 4).

A stage computes a reason (or None) per row; `tag` writes it into the tag columns for rows not
already rejected by an earlier stage, so the first stage to reject a record is the one recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from sft_ray import schema as S


def live_mask(table: pa.Table) -> pa.ChunkedArray:
    """True where no stage has rejected the row yet."""
    return pc.is_null(table[S.REJECT_REASON])


def tag(table: pa.Table, stage: str, reasons: Sequence[str | None], duplicate_of: Sequence[str | None] | None = None) -> pa.Table:
    if len(reasons) != table.num_rows:
        raise ValueError(f"{stage}: {len(reasons)} reasons for {table.num_rows} rows")
    live = live_mask(table).to_pylist()
    old_reason = table[S.REJECT_REASON].to_pylist()
    old_stage = table[S.REJECT_STAGE].to_pylist()
    old_dup = table[S.DUPLICATE_OF].to_pylist()
    new_reason, new_stage, new_dup = [], [], []
    for i, (ok, r) in enumerate(zip(live, reasons)):
        if ok and r is not None:
            new_reason.append(r)
            new_stage.append(stage)
            new_dup.append(duplicate_of[i] if duplicate_of is not None else None)
        else:
            new_reason.append(old_reason[i])
            new_stage.append(old_stage[i])
            new_dup.append(old_dup[i])
    return _set(table, {S.REJECT_REASON: new_reason, S.REJECT_STAGE: new_stage, S.DUPLICATE_OF: new_dup})


def _set(table: pa.Table, columns: dict[str, list]) -> pa.Table:
    for name, values in columns.items():
        idx = table.schema.get_field_index(name)
        table = table.set_column(idx, table.schema.field(idx), pa.array(values, type=table.schema.field(idx).type))
    return table


def set_columns(table: pa.Table, columns: dict[str, list]) -> pa.Table:
    """Replace whole columns (same names and types); used by stages that rewrite text."""
    return _set(table, columns)
