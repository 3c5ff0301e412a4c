"""Resumable read + clean: per-input-file completion markers under `<output>/_work/`.

Read and clean are the expensive, embarrassingly parallel part of a build (extraction, language
ID, quality filters), and they are per input file. So each *work unit* (one input file, a bitext
pair, or a whole `limit`ed source, which is read as one unit to keep its selection deterministic)
is read and cleaned by one Ray task that writes its records to `_work/clean/<unit>.parquet` and
then a marker `_work/clean/<unit>.done`. The global stages (dedup, decontamination) then read the
staged records back.

If the driver dies half-way, the rerun finds the markers and redoes only the units without one.
A unit's Parquet file without its marker (a task killed mid-write) is rewritten; Ray's own task
retries rewrite the same file name, so they are idempotent too. The markers are valid only for the
same inputs and the same read/clean configuration: `_work/fingerprint.json` holds a hash of both,
and a different one wipes `_work/`. The global stages are not staged (they are a few shuffles over
already-clean data); a finished build removes `_work/`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq
import ray

from sft_ray import schema as S
from sft_ray import storage
from sft_ray.clean import clean_batch
from sft_ray.config import RunConfig
from sft_ray.ingest.records import read_items

log = logging.getLogger("sft_ray")
WORK = "_work"


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
            "units": sorted(u.key for u in all_units), "sft_ray": __version__}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


class Workspace:
    """`<output>/_work/`: staged records of finished units and their markers."""

    def __init__(self, out: str, storage_options: dict):
        self.out, self.so = out, storage_options
        self.root = storage.join(out, WORK)
        self.clean_dir = storage.join(self.root, "clean")

    def prepare(self, fp: str) -> set[str]:
        """Keys of units already done for this fingerprint (wiping stale work)."""
        fp_url = storage.join(self.root, "fingerprint.json")
        if storage.exists(fp_url, self.so) and storage.read_json(fp_url, self.so).get("fingerprint") == fp:
            fs, path = storage.get_fs(self.clean_dir, self.so)
            names = [p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)] if fs.exists(path) else []
            return {n[: -len(".done")] for n in names if n.endswith(".done")}
        storage.remove(self.root, self.so)
        storage.write_json(fp_url, {"fingerprint": fp}, self.so)
        return set()

    def run(self, cfg: RunConfig, todo: list[Unit]) -> None:
        """Read + clean the pending units, one Ray task each, staging their records."""
        if not todo:
            return
        rows = [{"source": u.source, "key": u.key, "items": json.dumps(u.items)} for u in todo]
        ds = ray.data.from_items(rows, override_num_blocks=len(rows))
        ds.map_batches(
            _stage_units, batch_size=1, batch_format="pyarrow",
            fn_kwargs={"cfg_json": cfg.model_dump_json(), "clean_dir": self.clean_dir, "so": self.so},
        ).materialize()

    def read(self, keys: list[str]) -> ray.data.Dataset:
        if not keys:
            return ray.data.from_arrow(S.empty_records())
        fs, path = storage.pyarrow_fs(self.clean_dir, self.so)
        files = [f"{path}/{k}.parquet" for k in sorted(keys)]
        return ray.data.read_parquet(files, filesystem=fs, schema=S.RECORD_SCHEMA)

    def remove(self) -> None:
        storage.remove(self.root, self.so)


def _stage_units(batch: pa.Table, cfg_json: str, clean_dir: str, so: dict) -> pa.Table:
    """Ray task body: read and clean one unit, write its Parquet file, then its marker."""
    cfg = RunConfig.model_validate_json(cfg_json)
    done = []
    for row in batch.to_pylist():
        src = next(s for s in cfg.sources if s.name == row["source"])
        fs, path = storage.get_fs(storage.join(clean_dir, f"{row['key']}.parquet"), so)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        n = 0
        with fs.open(path, "wb") as f, pq.ParquetWriter(f, S.RECORD_SCHEMA) as writer:
            for block in read_items(src, json.loads(row["items"]), cfg.read_batch_size, cfg.clean.extract):
                if cfg.clean.enabled:
                    block = clean_batch(block, cfg.clean)
                writer.write_table(block.select(S.RECORD_SCHEMA.names).cast(S.RECORD_SCHEMA))
                n += block.num_rows
        storage.write_text(storage.join(clean_dir, f"{row['key']}.done"), json.dumps({"rows": n}), so)
        done.append({"key": row["key"], "rows": n})
    return pa.Table.from_pylist(done, schema=pa.schema([("key", pa.string()), ("rows", pa.int64())]))
