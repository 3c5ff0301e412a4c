"""Read + clean, one Ray task per work unit: streamed on, or staged with completion markers.

Read and clean are the expensive, embarrassingly parallel part of a build (extraction, language
ID, quality filters), and they are per input file. So each *work unit* (one input file, a bitext
pair, or a whole `limit`ed source, which is read as one unit to keep its selection deterministic)
is read and cleaned by one Ray task, `_stage_units`, whether or not the run is resumable:

    read_clean(cfg, units)   resumable=false: the task yields its records to the global stages
    Workspace.run(cfg, units)  resumable=true: the task writes its records to
                             `<output>/_work/clean/<unit>.parquet`, then a marker `<unit>.done`;
                             the global stages (dedup, decontamination) read the staged records back

If the driver dies half-way, the rerun finds the markers and redoes only the units without one.
A unit's Parquet file without its marker (a task killed mid-write) is rewritten; Ray's own task
retries rewrite the same file name, so they are idempotent too. The markers are valid only for the
same inputs, read/clean configuration and record schema: `_work/fingerprint.json` holds a hash of
them, and a different one wipes `_work/`. The global stages are not staged (they are a few shuffles
over already-clean data); a finished build removes `_work/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from sft_ray import schema
from sft_ray import storage
from sft_ray.clean import clean_batch
from sft_ray.config import RunConfig
from sft_ray.dedup.removals import ROW, UNIT_BITS
from sft_ray.ingest.records import read_items

log = logging.getLogger("sft_ray")
WORK = "_work"
_STAGED = pa.schema([("key", pa.string()), ("rows", pa.int64())])
# Staged records: the record schema plus each record's row within its unit, from which dedup's row
# ids (unit ordinal << 32 | row: dedup/removals.py) are made when the units are read back.
STAGED_SCHEMA = schema.RECORD_SCHEMA.append(pa.field(ROW, pa.int64()))


@dataclass(frozen=True)
class Unit:
    source: str
    key: str
    items: list[dict]


def units(cfg: RunConfig, inputs: dict[str, list[dict]]) -> list[Unit]:
    out = []
    for src in cfg.sources:
        items = inputs[src.name]
        groups = [items] if src.limit is not None else [[it] for it in items]
        for group in groups:
            ident = json.dumps([src.name, [(it["url"], it.get("tgt_url"), int(it["size"])) for it in group]])
            out.append(Unit(src.name, f"{src.name}-{hashlib.blake2b(ident.encode(), digest_size=10).hexdigest()}", group))
    return out


def fingerprint(cfg: RunConfig, all_units: list[Unit]) -> str:
    from sft_ray import __version__

    what = {"sources": [s.model_dump() for s in cfg.sources], "clean": cfg.clean.model_dump(), "read_batch_size": cfg.read_batch_size,
            "units": sorted(u.key for u in all_units), "sft_ray": __version__, "schema": STAGED_SCHEMA.names}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def read_clean(cfg: RunConfig, todo: list[Unit]) -> ray.data.Dataset:
    """The records of `todo`, read and cleaned (RECORD_SCHEMA blocks), streamed to the next stage."""
    if not todo:
        return ray.data.from_arrow(STAGED_SCHEMA.empty_table())
    return _unit_tasks(cfg, todo, None, {})


# gzip/zstd (and Parquet's encodings) shrink text about 3-5x; Ray estimates Parquet at 5x by default.
_EXPANSION = 4


def listed_bytes(todo: list[Unit]) -> int:
    """Estimated in-memory bytes of the units' records before any is read (the listed file sizes,
    compressed files and Parquet times `_EXPANSION`): what sizes the dedup shuffles of a streamed
    build, whose records are not known until they have gone by. It overestimates where cleaning
    or HTML extraction drops much, or `limit` reads only part of a source: more, smaller partitions."""
    from fsspec.utils import infer_compression

    def expansion(url: str) -> int:  # a bitext pair's two files share their compression
        return _EXPANSION if infer_compression(url) or url.endswith(".parquet") else 1

    return sum(int(it["size"]) * expansion(it["url"]) for u in todo for it in u.items)


class Workspace:
    """`<output>/_work/`: staged records of finished units and their markers."""

    def __init__(self, out: str, storage_options: dict):
        self.out, self.storage_options = out, storage_options
        self.root = storage.join(out, WORK)
        self.clean_dir = storage.join(self.root, "clean")
        self.dedup_dir = storage.join(self.root, "dedup")  # global dedup steps (dedup/steps.py)

    def prepare(self, fp: str) -> set[str]:
        """Keys of units already done for this fingerprint (wiping stale work)."""
        fp_url = storage.join(self.root, "fingerprint.json")
        if storage.exists(fp_url, self.storage_options) and storage.read_json(fp_url, self.storage_options).get("fingerprint") == fp:
            fs, path = storage.get_fs(self.clean_dir, self.storage_options)
            names = [p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)] if fs.exists(path) else []
            return {n[: -len(".done")] for n in names if n.endswith(".done")}
        storage.remove(self.root, self.storage_options)
        storage.write_json(fp_url, {"fingerprint": fp}, self.storage_options)
        return set()

    def run(self, cfg: RunConfig, todo: list[Unit]) -> None:
        """Read + clean the pending units, one Ray task each, staging their records."""
        if todo:
            _unit_tasks(cfg, todo, self.clean_dir, self.storage_options).materialize()

    def read(self, keys: list[str]) -> ray.data.Dataset:
        """The staged records of `keys`, each with its row id: the unit's ordinal in sorted key order
        << 32 | its row in the unit (a reused unit's ordinal is set here, not when it was staged)."""
        if not keys:
            return ray.data.from_arrow(STAGED_SCHEMA.empty_table())
        fs, path = storage.pyarrow_fs(self.clean_dir, self.storage_options)
        keys = sorted(keys)
        files = [f"{path}/{k}.parquet" for k in keys]
        ds = ray.data.read_parquet(files, filesystem=fs, schema=STAGED_SCHEMA, include_paths=True)
        return ds.map_batches(_row_ids, batch_format="pyarrow", fn_kwargs={"ordinals": {f"{k}.parquet": i for i, k in enumerate(keys)}})

    def remove(self) -> None:
        storage.remove(self.root, self.storage_options)


def _row_ids(table: pa.Table, ordinals: dict[str, int]) -> pa.Table:
    """Staged rows -> row ids, from the file each row came from (Ray's `path` column, then dropped)."""
    paths = table["path"]
    files = pc.unique(paths)
    unit_of_file = pa.array([ordinals[p.rsplit("/", 1)[-1]] for p in files.to_pylist()], pa.int64())
    unit = pc.take(unit_of_file, pc.index_in(paths, value_set=files))
    rows = pc.add(pc.shift_left(unit, UNIT_BITS), table[ROW])
    table = table.drop_columns(["path"])
    return table.set_column(table.schema.get_field_index(ROW), ROW, rows)


def _unit_tasks(cfg: RunConfig, todo: list[Unit], clean_dir: str | None, storage_options: dict) -> ray.data.Dataset:
    rows = [{"source": u.source, "key": u.key, "ordinal": i, "items": json.dumps(u.items)} for i, u in enumerate(todo)]
    return ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _stage_units, batch_size=1, batch_format="pyarrow",
        fn_kwargs={"cfg_json": cfg.model_dump_json(), "clean_dir": clean_dir, "storage_options": storage_options},
    )


def unit_records(cfg: RunConfig, source: str, items: list[dict]) -> Iterator[pa.Table]:
    """One unit's records, read and cleaned, in RECORD_SCHEMA blocks of at most `read_batch_size` rows."""
    src = next(s for s in cfg.sources if s.name == source)
    for block in read_items(src, items, cfg.read_batch_size, cfg.clean.extract):
        if cfg.clean.enabled:
            block = clean_batch(block, cfg.clean)
        yield block.select(schema.RECORD_SCHEMA.names).cast(schema.RECORD_SCHEMA)


def _numbered(blocks: Iterator[pa.Table], base: int) -> Iterator[pa.Table]:
    n = 0
    for block in blocks:
        yield block.append_column(ROW, pa.array(base + n + np.arange(block.num_rows, dtype=np.int64)))
        n += block.num_rows


def _stage_units(batch: pa.Table, cfg_json: str, clean_dir: str | None, storage_options: dict) -> Iterator[pa.Table]:
    """Ray task body: read and clean each unit of the batch, numbering its rows. Unstaged
    (`clean_dir` None): yield its records with row ids (the unit's ordinal in `todo` << 32 | row).
    Staged: write them with their row in the unit to `<clean_dir>/<key>.parquet` (Workspace.read
    adds the ordinal), then the marker; yield (key, rows)."""
    cfg = RunConfig.model_validate_json(cfg_json)
    for row in batch.to_pylist():
        base = 0 if clean_dir is not None else row["ordinal"] << UNIT_BITS
        blocks = _numbered(unit_records(cfg, row["source"], json.loads(row["items"])), base)
        if clean_dir is None:
            yield from blocks
            continue
        fs, path = storage.get_fs(storage.join(clean_dir, f"{row['key']}.parquet"), storage_options)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        n = 0
        with fs.open(path, "wb") as f, pq.ParquetWriter(f, STAGED_SCHEMA) as writer:
            for block in blocks:
                writer.write_table(block)
                n += block.num_rows
        storage.write_text(storage.join(clean_dir, f"{row['key']}.done"), json.dumps({"rows": n}), storage_options)
        yield pa.Table.from_pylist([{"key": row["key"], "rows": n}], schema=_STAGED)
