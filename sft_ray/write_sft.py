"""Write sft/train, sft/validation and sft/rejects, and gather the SFT figures, in one pass.

The deduplicated examples used to be scanned five times, each a Ray Data execution of its own:
the counts, samples and token lengths (report/counts.py), the label sources (format/labels.py),
and one write per folder. Now one task per block writes the block's train, validation and removed
examples as one Parquet file each (write.py's `write_part`, named by a hash of the block's ids, so
a retried task rewrites the same files) and returns the same per-block rows those scans made;
the driver folds them (`fold_sft_groups`, `fold_label_sources`). Same outputs, one execution.
"""

from __future__ import annotations

import pyarrow as pa
import ray

from sft_ray import schema
from sft_ray.dedup.sft import removed, survivors
from sft_ray.format.labels import fold_label_sources, label_source_counts_batch
from sft_ray.report.counts import fold_sft_groups, sft_groups
from sft_ray.write import PIECES_SCHEMA, block_name, iter_pieces, pieces_table, write_part

FOLDERS = {"sft/train": schema.SFT_OUTPUT_SCHEMA, "sft/validation": schema.SFT_OUTPUT_SCHEMA, "sft/rejects": schema.REJECT_SCHEMA}


def _write_examples_block(table: pa.Table, out: str, storage_options: dict, tokenizer_path: str | None, count_tokens: bool) -> pa.Table:
    """Ray task body: the block's three files, and its figures as IPC pieces."""
    if table.num_rows == 0:
        return PIECES_SCHEMA.empty_table()
    table = table.combine_chunks()
    name = block_name(table, (schema.ID,))
    parts = {"sft/train": survivors(table, "train"), "sft/validation": survivors(table, "validation"), "sft/rejects": removed(table)}
    for sub, part in parts.items():
        write_part(part, out, sub, name, FOLDERS[sub], storage_options)
    pieces = {"groups": sft_groups(table, tokenizer_path, count_tokens), "label_sources": label_source_counts_batch(table)}
    return pieces_table(pieces)


def write_examples(sft: ray.data.Dataset, out: str, storage_options: dict,
                   tokenizer: tuple[str | None, str] | None) -> tuple[dict, list[dict]]:
    """The one pass over tagged SFT examples (dedup/sft.py): the manifest's `sft` summary, with
    `label_sources`, and one sample example per task. `tokenizer`: as report.counts.sft_counts."""
    kwargs = {"out": out, "storage_options": storage_options, "tokenizer_path": tokenizer[0] if tokenizer else None,
              "count_tokens": tokenizer is not None}
    rows: dict[str, list[dict]] = {"groups": [], "label_sources": []}
    for piece, table in iter_pieces(sft.map_batches(_write_examples_block, batch_format="pyarrow", fn_kwargs=kwargs)):
        rows[piece] += table.to_pylist()
    summary, samples = fold_sft_groups(rows["groups"], tokenizer)
    summary["label_sources"] = fold_label_sources(rows["label_sources"])  # {task: {gold|human|model|teacher: n}}
    return summary, samples
