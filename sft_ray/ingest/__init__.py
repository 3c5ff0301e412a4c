"""Ingest: sources (any fsspec URL, any supported format) -> one Ray Dataset of records.

Files are listed on the driver; each file (or bitext pair) is read by one Ray task that streams
it in blocks of `read_batch_size` records, so memory per task does not grow with file size and
the files of a source are read in parallel. A source with a `limit` is read by a single task in
sorted file order, so *which* records are taken is deterministic.
"""

from __future__ import annotations


import pyarrow as pa
import ray

from sft_ray import schema as S
from sft_ray.config import ExtractConfig, RunConfig, SourceConfig
from sft_ray.ingest.files import InputNotFound, list_source_files
from sft_ray.ingest.records import read_items

__all__ = ["InputNotFound", "list_inputs", "read_sources"]


def list_inputs(cfg: RunConfig) -> dict[str, list[dict]]:
    """Source name -> work items. Raises InputNotFound (naming the path) for a path with no files."""
    return {src.name: list_source_files(src) for src in cfg.sources}


def _read_batch(batch: pa.Table, source_json: str, block_rows: int, extract_json: str | None = None):
    """map_batches UDF: a batch of work items -> Arrow record blocks (a generator, so streaming)."""
    src = SourceConfig.model_validate_json(source_json)
    extract_cfg = ExtractConfig.model_validate_json(extract_json) if extract_json else None
    yield from read_items(src, batch.to_pylist(), block_rows, extract_cfg)


def read_source(
    src: SourceConfig, items: list[dict], block_rows: int, extract_cfg: ExtractConfig | None = None
) -> ray.data.Dataset:
    """`extract_cfg` (clean.extract) is used by web formats, whose pages are extracted in the read task."""
    # One block per work item so Ray schedules files in parallel; a limited source is one block.
    per_task = len(items) if src.limit is not None else 1
    ds = ray.data.from_items(items, override_num_blocks=max(1, len(items) // per_task))
    return ds.map_batches(
        _read_batch,
        batch_size=per_task,
        batch_format="pyarrow",  # keeps None as None (numpy batches would turn it into NaN)
        fn_kwargs={
            "source_json": src.model_dump_json(),
            "block_rows": block_rows,
            "extract_json": extract_cfg.model_dump_json() if extract_cfg else None,
        },
    )


def read_sources(cfg: RunConfig, inputs: dict[str, list[dict]]) -> ray.data.Dataset:
    parts = [read_source(src, inputs[src.name], cfg.read_batch_size, cfg.clean.extract) for src in cfg.sources]
    if not parts:
        return ray.data.from_arrow(S.empty_records())
    ds = parts[0]
    return ds.union(*parts[1:]) if len(parts) > 1 else ds


def describe_inputs(inputs: dict[str, list[dict]]) -> list[dict]:
    return [
        {"source": name, "files": [{"path": it["url"], **({"tgt_path": it["tgt_url"]} if it.get("tgt_url") else {}), "bytes": int(it["size"])} for it in items]}
        for name, items in inputs.items()
    ]


