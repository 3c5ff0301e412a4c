"""Ingest: sources (any fsspec URL, any supported format) -> records.

Files are listed on the driver (`list_inputs`); each work unit (a group of small files, one file or
bitext pair, or a byte range of a large uncompressed line file: staging.py, ranges.py) is read by
one Ray task (which cleans in the same task) that streams it in blocks of `read_batch_size` records
(`records.read_items`), so memory per task does not grow with file size and the units of a source
are read in parallel. A source with a `limit` is read by a single task in sorted file order, so
*which* records are taken is deterministic.
"""

from __future__ import annotations

from sft_ray.config import RunConfig
from sft_ray.ingest.files import InputNotFound, list_source_files

__all__ = ["InputNotFound", "describe_inputs", "list_inputs"]


def list_inputs(cfg: RunConfig) -> dict[str, list[dict]]:
    """Source name -> work items. Raises InputNotFound (naming the path) for a path with no files.
    The build's own output (and its `_work/`) is never listed, even inside a source folder."""
    from sft_ray.storage import abs_output

    return {src.name: list_source_files(src, exclude=abs_output(cfg.output)) for src in cfg.sources}


def describe_inputs(inputs: dict[str, list[dict]]) -> list[dict]:
    return [
        {"source": name, "files": [{"path": it["url"], **({"tgt_path": it["tgt_url"]} if it.get("tgt_url") else {}), "bytes": int(it["size"]),
                                    "version": it.get("version", "") + (f"|{it['tgt_version']}" if it.get("tgt_version") else "")} for it in items]}
        for name, items in inputs.items()
    ]


