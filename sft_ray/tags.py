"""Tag, then select: the one place that marks records as rejected (docs/ARCHITECTURE.md, principle 2).

A stage computes a reason (or None) per row; `tag` writes it into the tag columns for rows not
already rejected by an earlier stage, so the first stage to reject a record is the one recorded.
"""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from sft_ray import schema


def live_mask(table: pa.Table) -> pa.ChunkedArray:
    """True where no stage has rejected the row yet."""
    return pc.is_null(table[schema.REJECT_REASON])


def tag(table: pa.Table, stage: str, reasons: Sequence[str | None], duplicate_of: Sequence[str | None] | None = None) -> pa.Table:
    if len(reasons) != table.num_rows:
        raise ValueError(f"{stage}: {len(reasons)} reasons for {table.num_rows} rows")
    reason_arr = pa.array(reasons, pa.string())
    # Vectorised: every clean filter and dedup calls this once per block, so no Python per row.
    newly = pc.and_(live_mask(table), pc.is_valid(reason_arr))
    dup_arr = pa.array(duplicate_of if duplicate_of is not None else [None] * table.num_rows, pa.string())
    columns = {
        schema.REJECT_REASON: pc.if_else(newly, reason_arr, table[schema.REJECT_REASON]),
        schema.DUPLICATE_OF: pc.if_else(newly, dup_arr, table[schema.DUPLICATE_OF]),
    }
    if schema.REJECT_STAGE in table.column_names:  # SFT examples have none: their stage follows from the reason (dedup/sft.py)
        columns[schema.REJECT_STAGE] = pc.if_else(newly, pa.array([stage] * table.num_rows, pa.string()), table[schema.REJECT_STAGE])
    return set_columns(table, columns)


def set_columns(table: pa.Table, columns: dict) -> pa.Table:
    """Replace whole columns (same names and types) with lists or Arrow arrays."""
    for name, values in columns.items():
        idx = table.schema.get_field_index(name)
        field = table.schema.field(idx)
        arr = values.cast(field.type) if isinstance(values, (pa.Array, pa.ChunkedArray)) else pa.array(values, type=field.type)
        table = table.set_column(idx, field, arr)
    return table
