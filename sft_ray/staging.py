"""Read + clean, one Ray task per work unit: streamed on, or staged with completion markers.

Read and clean are the expensive, embarrassingly parallel part of a build (extraction, language
ID, quality filters). They run as *work units* of about `staging.unit_bytes` of input each, one
Ray task per unit, `_stage_units`, whether or not the run is resumable (`units`):

- files smaller than half of `unit_bytes` are grouped: in sorted url order, a unit ends after a
  file whose path hash h in [0, 1) is below size / unit_bytes (or when it reaches 2 x unit_bytes).
  That is content-defined chunking (rsync, LBFS) over the file list: the expected unit holds
  unit_bytes, a boundary depends only on its own file, so adding or removing a file changes its own
  unit (and at most the 2x-capped units up to the next hashed boundary), never every later unit as
  greedy filling in sorted order would, and needs no state from earlier runs as "keep the old
  units, put new files in new ones" would. A million small HTML files become about
  total/unit_bytes tasks. A file of at least half a unit is a unit of its own: grouped, files that
  size made units of 1 to 4 files, and on a small corpus one such unit is the straggler that the
  whole read + clean waits for (8 files of 9 MB, 16 MiB units: 4 units of 10,000, 2,500, 2,500 and
  2,500 documents; `benchmarks/clean_throughput.py`, README "Where a build's time goes");
- an uncompressed JSONL/CSV/TSV/lines file larger than `unit_bytes` is cut into byte ranges
  at line boundaries (ingest/ranges.py), one unit each, so one 50 GB file is read in parallel; the
  records, ids and `meta.line` equal those of the file read whole. Compressed files, Parquet, WARC,
  JSON documents (SQuAD) and bitext pairs cannot be cut and stay one unit each;
- a `limit`ed source is one unit, read in sorted order, so *which* records are taken is deterministic.

    read_clean(cfg, units)   resumable=false: the task yields its records to the global stages
    Workspace.run(cfg, units)  resumable=true: the task writes its records to
                             `<output>/_work/clean/<unit>.parquet`, then a marker `<unit>.done`;
                             the global stages (dedup, decontamination) read the staged records back

A unit's key hashes its source, its files' urls, sizes and content versions (ingest/files.py: an
object store's ETag, locally mtime_ns + inode) and its byte range, so a marker is valid exactly as
long as that input is unchanged (an edit that keeps a file's size restages its unit): the rerun of an interrupted build, or a rebuild
after files were added (with `staging.keep_work`, since a finished build otherwise removes
`_work/`), reads and cleans only the units without a marker; staged files of units that no longer
exist (a removed or changed file) are deleted. A unit's Parquet file without its marker (a task
killed mid-write) is rewritten; Ray's own task retries rewrite the same file name, so they are
idempotent too. Everything else that decides a unit's records, the sources' read/clean settings,
the clean config, read_batch_size, the sft_ray version and the record schema, is hashed into
`_work/fingerprint.json`, and a different hash wipes `_work/`. The global stages are not staged
(they are a few shuffles over already-clean data).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from sft_ray import schema
from sft_ray import storage
from sft_ray.clean import changes, clean_batch
from sft_ray.config import RunConfig
from sft_ray.dedup.removals import ROW, UNIT_BITS
from sft_ray.ingest import ranges
from sft_ray.ingest.records import read_items

log = logging.getLogger("sft_ray")
WORK = "_work"
_STAGED = pa.schema([("key", pa.string()), ("rows", pa.int64()), ("bytes", pa.int64()), ("first_at", pa.float64())])
# Staged records: the record schema, what normalisation changed (clean/changes.py: internal columns
# that the write pass reads for the report and drops), and each record's row within its unit, from
# which dedup's row ids (unit ordinal << 32 | row: dedup/removals.py) are made when the units are read back.
TRACED_SCHEMA = pa.schema([*schema.RECORD_SCHEMA, *changes.FIELDS])
STAGED_SCHEMA = TRACED_SCHEMA.append(pa.field(ROW, pa.int64()))


@dataclass
class Staged:
    """What `Workspace.run`'s tasks returned: each unit's records' in-memory bytes, and when the
    first block of records was read and cleaned (epoch seconds; None when no unit had records)."""

    sizes: dict[str, int]
    first_at: float | None


@dataclass(frozen=True)
class Unit:
    source: str
    key: str
    items: list[dict]


def units(cfg: RunConfig, inputs: dict[str, list[dict]]) -> list[Unit]:
    """The work units of the listed inputs (module docstring), in source then url order."""
    out = []
    for src in cfg.sources:
        items = inputs[src.name]
        unit_bytes = effective_unit_bytes(sum(int(it["size"]) for it in items), cfg.staging.unit_bytes, cfg.staging.min_units)
        if src.limit is not None:
            groups = [items]
        else:
            small = sorted((it for it in items if int(it["size"]) < unit_bytes // 2), key=_order)
            half = [[it] for it in items if unit_bytes // 2 <= int(it["size"]) < unit_bytes]  # a unit each (docstring)
            large = sorted((it for it in items if int(it["size"]) >= unit_bytes), key=_order)
            groups = (_group(small, unit_bytes) if cfg.staging.group_small_files else [[it] for it in small]) + half
            for it in large:
                if ranges.splittable(src.format, it["url"]) and int(it["size"]) > unit_bytes:
                    groups += [[{**it, "size": e - s, "file_size": int(it["size"]), "start": s, "end": e}]
                               for s, e in ranges.cuts(int(it["size"]), unit_bytes)]
                else:
                    groups.append([it])
            groups.sort(key=lambda g: (_order(g[0]), g[0].get("start", 0)))
        for group in groups:
            out.append(Unit(src.name, _key(src.name, group), group))
    return out


MIN_UNIT_BYTES = 16 << 20  # below this a task's start-up, not its reading, is the cost


def effective_unit_bytes(source_bytes: int, unit_bytes: int, min_units: int) -> int:
    """The unit size for a source of `source_bytes`: `unit_bytes`, or less when the source is smaller
    than `min_units` units of it, so a small corpus still spreads over a cluster's cores (measured:
    79 MB of JSONL as one 1 GiB unit read+cleaned in 63 s on one core of two, as 4 units in 37 s).
    A power of two of at least MIN_UNIT_BYTES, so it changes only when the source's size doubles or
    halves (units, and incremental rebuilds, stay stable as files are added); never above `unit_bytes`."""
    target = source_bytes // max(1, min_units)
    step = 1 << max(0, target.bit_length() - 1)  # the power of two at or below the target
    return min(unit_bytes, max(MIN_UNIT_BYTES, step))


def _order(it: dict) -> tuple[str, str]:
    return it["url"], it.get("tgt_url") or ""


def _key(source: str, group: list[dict]) -> str:
    """`<source>-<hash>` of the unit's input: its files' urls, sizes and versions, and its byte range."""
    def ident(it: dict) -> tuple:
        whole = (it["url"], it.get("tgt_url"), int(it.get("file_size", it["size"])), it.get("version"), it.get("tgt_version"))
        return whole + (int(it["start"]), int(it["end"])) if it.get("end") is not None else whole
    blob = json.dumps([source, [ident(it) for it in group]])
    return f"{source}-{hashlib.blake2b(blob.encode(), digest_size=10).hexdigest()}"


def _group(items: list[dict], unit_bytes: int) -> list[list[dict]]:
    """Content-defined groups of small files (module docstring): a group ends after a file whose path
    hash falls below size / unit_bytes, or once it holds 2 x unit_bytes."""
    groups, cur, total = [], [], 0
    for it in items:
        cur.append(it)
        total += int(it["size"])
        name = it.get("rel") or it["url"]  # the path below the source's base: the same groups wherever the corpus lives
        h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big") / 2**64
        if h * unit_bytes < int(it["size"]) or total >= 2 * unit_bytes:
            groups.append(cur)
            cur, total = [], 0
    return groups + [cur] if cur else groups


def fingerprint(cfg: RunConfig) -> str:
    """Hash of what decides every unit's records besides its input (which its key hashes)."""
    from sft_ray import __version__

    what = {"sources": [s.model_dump() for s in cfg.sources], "clean": cfg.clean.model_dump(), "read_batch_size": cfg.read_batch_size,
            "sft_ray": __version__, "schema": STAGED_SCHEMA.names}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def read_clean(cfg: RunConfig, todo: list[Unit], materialize: bool = False,
               start_ray: Callable[[], None] | None = None) -> tuple[ray.data.Dataset, float | None]:
    """The records of `todo`, read and cleaned (STAGED_SCHEMA blocks, rows as row ids), streamed to
    the next stage or `materialize`d. `start_ray` (materialized only: a stream cannot wait for the
    driver's units): Ray is not started yet; the driver reads and cleans units while it starts
    (`DriverUnits`) and holds their records until they join the tasks' in the object store.
    Returns the records and when the driver's first block was ready (None without driver units)."""
    mine, ds = _overlapped(cfg, todo, None, {}, start_ray, with_driver=materialize)
    if not todo:
        return ray.data.from_arrow(STAGED_SCHEMA.empty_table()), None
    if materialize and ds is not None:
        ds = ds.materialize()
    if mine is None:
        return ds, None
    # One block per unit, as its task would give (a unit without records, an empty file: an empty block).
    blocks = ray.data.from_arrow([pa.concat_tables(b) if b else STAGED_SCHEMA.empty_table() for b in mine.result()])
    return (ds.union(blocks) if ds is not None else blocks).materialize(), mine.first_at


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

    def prepare(self, fp: str, current: list[Unit]) -> set[str]:
        """Keys of `current` units already done for this fingerprint. A different fingerprint wipes
        `_work/`; staged files of units not in `current` (removed or changed inputs) are deleted."""
        fp_url = storage.join(self.root, "fingerprint.json")
        if storage.exists(fp_url, self.storage_options) and storage.read_json(fp_url, self.storage_options).get("fingerprint") == fp:
            fs, path = storage.get_fs(self.clean_dir, self.storage_options)
            names = [p.rsplit("/", 1)[-1] for p in fs.ls(path, detail=False)] if fs.exists(path) else []
            keys = {u.key for u in current}
            stale = [f"{path}/{n}" for n in names if n.rsplit(".", 1)[0] not in keys]
            if stale:
                log.info("staging: removing %d staged files of units no longer in the input", len(stale))
                fs.rm(stale)
            return {n[: -len(".done")] for n in names if n.endswith(".done")} & keys
        storage.remove(self.root, self.storage_options)
        storage.write_json(fp_url, {"fingerprint": fp}, self.storage_options)
        return set()

    def run(self, cfg: RunConfig, todo: list[Unit], start_ray: Callable[[], None] | None = None) -> Staged:
        """Read + clean the pending units, one Ray task each, staging their records; progress (units,
        records, ETA) is logged as units finish. `start_ray`: Ray is not started yet (a local build
        from the command line); while it starts, the driver stages units itself (`DriverUnits`),
        and the tasks take the rest."""
        from sft_ray.console import Progress

        mine, tasks = _overlapped(cfg, todo, self.clean_dir, self.storage_options, start_ray)
        if not todo:
            return Staged({}, None)
        progress, records, staged = Progress("read+clean", len(todo), "units"), 0, Staged({}, None)
        batches = tasks.iter_batches(batch_format="pyarrow", batch_size=None) if tasks is not None else []
        for done in [*batches, *(u[0] for u in (mine.result() if mine is not None else []))]:
            records += sum(done.column("rows").to_pylist())
            staged.sizes.update(zip(done.column("key").to_pylist(), done.column("bytes").to_pylist()))
            firsts = [t for t in [*done.column("first_at").to_pylist(), staged.first_at] if t is not None]
            staged.first_at = min(firsts, default=None)
            progress.add(done.num_rows, f"{records:,} records")
        return staged

    def staged_bytes(self, keys: list[str], known: dict[str, int]) -> int:
        """In-memory bytes of the staged records of `keys`: what this run's tasks returned (`known`),
        else the unit's marker (a reused unit). Read from these, not `Dataset.size_bytes()`, which in
        Ray 2.60 executes the whole read (2 s of a 20k-document build, `benchmarks/clean_throughput.py`).
        A marker of an older version without the figure counts its Parquet file at `_EXPANSION`x.
        Reused units' markers are read in parallel (one GET each on object storage)."""
        from concurrent.futures import ThreadPoolExecutor

        def reused(k: str) -> int:
            marker = storage.read_json(storage.join(self.clean_dir, f"{k}.done"), self.storage_options)
            if "bytes" in marker:
                return int(marker["bytes"])
            fs, path = storage.get_fs(storage.join(self.clean_dir, f"{k}.parquet"), self.storage_options)
            return int(fs.size(path)) * _EXPANSION

        todo = [k for k in keys if k not in known]
        with ThreadPoolExecutor(max_workers=16) as pool:
            return sum(known[k] for k in keys if k in known) + sum(pool.map(reused, todo))

    def read(self, keys: list[str], size_bytes: int) -> ray.data.Dataset:
        """The staged records of `keys`, each with its row id: the unit's ordinal in sorted key order
        << 32 | its row in the unit (a reused unit's ordinal is set here, not when it was staged).
        One task per piece (`_read_staged`): a staged file, or an even share of its row groups where
        `read_blocks` asks for more blocks than there are files. Not Ray's default of at least 200
        blocks: every later map of the build runs a task per block, and each pays a fixed cost (the
        report's per-block samples). Not `ray.data.read_parquet` either: in Ray 2.60 it lists the
        files in a task of its own first (1.2 s, 0.17 s of it CPU, for 13 local files) and read
        the 13 staged units of `benchmarks/near_dedup.py`'s 100k-document corpus as 2 blocks of
        41,856 and 58,144 records whatever `override_num_blocks` said: the band keys then ran as 2
        tasks of 3.2 and 4.4 s instead of 13 shared out over the CPUs."""
        if not keys:
            return ray.data.from_arrow(STAGED_SCHEMA.empty_table())
        keys = sorted(keys)
        pieces = -(-read_blocks(len(keys), size_bytes) // len(keys))  # per file
        rows = [{"key": k, "ordinal": i, "piece": j, "pieces": pieces} for i, k in enumerate(keys) for j in range(pieces)]
        return ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
            _read_staged, batch_size=1, batch_format="pyarrow", fn_kwargs={"clean_dir": self.clean_dir, "storage_options": self.storage_options})

    def remove(self) -> None:
        storage.remove(self.root, self.storage_options)


HEAD_MAX_BYTES = 64 << 20  # a unit the driver takes: more would hold a streamed build's driver memory and could straggle
HEAD_MIN_BYTES = 1 << 20
DRIVER_MAX_BYTES = 4 * HEAD_MAX_BYTES  # all the driver's units: a streamed build holds their records until Ray is up
RAY_START_S = 4.5  # a local `ray.init` on a 2-core machine: 4.2-4.7 s (README "Where a build's time goes")


class DriverUnits:
    """Units of a local build read, cleaned and staged on the driver, in a thread, while Ray starts.
    A local `ray.init` takes 4.2-4.7 s on a 2-core machine, and the build's first records came only
    after it (README "Where a build's time goes"); the units' work is the build's own, not a
    warm-up: staged, a unit's marker makes the Ray tasks skip it, exactly as a resumed build skips a
    finished unit. The first unit is `head_choice`'s. After it, the driver takes the next smallest
    unit only while its pace so far says the unit ends before Ray's expected start (RAY_START_S from
    the thread's start), and none once Ray is up (`stop`): a unit still running on the driver when
    the tasks start would compete with them for the CPUs and straggle. On the 100k-document
    dedup corpus (`benchmarks/near_dedup.py`), the first unit of 2,000 documents took 0.2 s and the
    driver then sat idle for 4 s while Ray's tasks were left all 12 other units. A unit cut from the
    middle of a file needs its line numbers counted by Ray tasks first (`number_ranges`), so the
    driver's units start at the beginning of their files."""

    def __init__(self, order: list[int], todo: list[Unit], cfg: RunConfig, clean_dir: str | None, storage_options: dict):
        self.first_at: float | None = None
        self._taken: list[Unit] = []
        self._out: list[list[pa.Table]] = []
        self._error: BaseException | None = None
        self._stopped = False
        self._lock = threading.Lock()

        def take(unit: Unit, size: int, began: float, done_bytes: int) -> bool:
            """Whether the driver takes `unit` next (under the lock: `stop` cannot interleave)."""
            with self._lock:
                if self._stopped or done_bytes + size > DRIVER_MAX_BYTES:
                    return False
                if self._taken:  # after the first: only a unit that ends before Ray's expected start
                    pace = done_bytes / max(time.time() - began, 1e-3)
                    if time.time() + size / max(pace, 1.0) > began + RAY_START_S:
                        return False
                self._taken.append(unit)
                return True

        def run() -> None:
            began, done_bytes = time.time(), 0
            try:
                for ordinal in order:
                    unit, size, blocks = todo[ordinal], listed_bytes([todo[ordinal]]), []
                    if not take(unit, size, began, done_bytes):
                        break
                    row = pa.Table.from_pylist([{"source": unit.source, "key": unit.key, "ordinal": ordinal, "items": json.dumps(unit.items)}])
                    for table in _stage_units(row, cfg.model_dump_json(), clean_dir, storage_options):
                        self.first_at = self.first_at or time.time()
                        blocks.append(table)
                    self._out.append(blocks)
                    done_bytes += size
            except BaseException as e:  # re-raised on the driver's main thread by result()
                self._error = e
                return
            records = sum(b.num_rows for u in self._out for b in u) if clean_dir is None else sum(u[0]["rows"][0].as_py() for u in self._out)
            log.info("read+clean: %d of %d units (%s records) read and cleaned on the driver in %.1f s, while Ray started",
                     len(self._out), len(todo), f"{records:,}", time.time() - began)

        self._thread = threading.Thread(target=run, name="sft-ray-driver-units", daemon=True)
        self._thread.start()

    @classmethod
    def start(cls, cfg: RunConfig, todo: list[Unit], clean_dir: str | None, storage_options: dict) -> DriverUnits | None:
        """The thread over `driver_order(todo)`, or None when no unit qualifies. Staged (`clean_dir`),
        it writes each unit and its marker; streamed, it keeps the records, their row ids from the
        unit's ordinal in `todo`."""
        order = driver_order(todo)
        return cls(order, todo, cfg, clean_dir, storage_options) if order else None

    def stop(self) -> list[Unit]:
        """Ray is up: the driver takes no further unit. The units it took (the last may still run)."""
        with self._lock:
            self._stopped = True
            return list(self._taken)

    def result(self) -> list[list[pa.Table]]:
        """Per unit taken, what its task would have yielded (staged: its (key, rows, bytes, first_at)
        row; streamed: its record blocks), once the thread is done; its error, if it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._out


def head_choice(todo: list[Unit]) -> int | None:
    """The index in `todo` of the driver's first unit, or None: the smallest (the first of equals)
    that starts at its files' beginning and holds from HEAD_MIN_BYTES (or the largest such unit's
    size, if less) to HEAD_MAX_BYTES (listed_bytes). The smallest, because the driver's one thread
    competes with Ray's start and has its unit to itself while the tasks share out the rest: on the
    20k-document clean-chain corpus the first unit held 10,000 of the records, and read + clean
    (with Ray's start) took 42 s instead of 34 s with the smallest (2,500; one run each)."""
    eligible = [(listed_bytes([u]), i) for i, u in enumerate(todo) if _driver_may_take(u)]
    if not eligible:
        return None
    floor = min(HEAD_MIN_BYTES, max(eligible)[0])  # not an empty or tiny file's unit: it would show nothing early
    size, ordinal = min(e for e in eligible if e[0] >= floor)
    return ordinal if size <= HEAD_MAX_BYTES else None


def driver_order(todo: list[Unit]) -> list[int]:
    """The units the driver may take while Ray starts, in the order it takes them: `head_choice`,
    then the other units of at most HEAD_MAX_BYTES that start at their files' beginning, smallest first."""
    first = head_choice(todo)
    if first is None:
        return []
    rest = sorted((listed_bytes([u]), i) for i, u in enumerate(todo) if i != first and _driver_may_take(u))
    return [first, *(i for size, i in rest if size <= HEAD_MAX_BYTES)]


def _driver_may_take(u: Unit) -> bool:
    return all(int(it.get("start") or 0) == 0 for it in u.items)


READ_BLOCK_BYTES = 16 << 20  # the smallest block worth a task of its own (MIN_UNIT_BYTES)


def read_blocks(files: int, size_bytes: int) -> int:
    """Blocks to read `files` staged files of `size_bytes` as: one per file, or more where there are
    fewer files than twice the cluster's CPUs, to keep every CPU busy, but no block under
    READ_BLOCK_BYTES. Measured on 20k documents in 4 units (`benchmarks/clean_throughput.py`):
    Ray's default cut them into 76 blocks, and the write pass then took 5.8 s instead of ~1.5 s."""
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return max(files, min(2 * cpus, -(-size_bytes // READ_BLOCK_BYTES)))


STAGED_BLOCK_BYTES = 128 << 20  # row groups of a staged file are joined into blocks of up to this size (Ray's target block size)


def _read_staged(batch: pa.Table, clean_dir: str, storage_options: dict) -> Iterator[pa.Table]:
    """Ray task body: one piece of a staged unit's file (`Workspace.read`), its rows' ids set from
    the unit's ordinal; blocks of whole row groups up to STAGED_BLOCK_BYTES."""
    (row,) = batch.to_pylist()
    fs, path = storage.pyarrow_fs(clean_dir, storage_options)
    with fs.open_input_file(f"{path}/{row['key']}.parquet") as f:
        pf = pq.ParquetFile(f)
        n = pf.num_row_groups
        groups = range(row["piece"] * n // row["pieces"], (row["piece"] + 1) * n // row["pieces"])
        base = row["ordinal"] << UNIT_BITS
        pending: list[pa.Table] = []
        pending_bytes, yielded = 0, False

        def block() -> pa.Table:
            t = pa.concat_tables([STAGED_SCHEMA.empty_table(), *pending]).cast(STAGED_SCHEMA)
            pending.clear()
            return t.set_column(t.schema.get_field_index(ROW), ROW, pc.add(t[ROW], pa.scalar(base, pa.int64())))

        for g in groups:
            pending.append(pf.read_row_group(g))
            pending_bytes += pending[-1].nbytes
            if pending_bytes >= STAGED_BLOCK_BYTES:
                pending_bytes, yielded = 0, True
                yield block()
        if pending or (row["piece"] == 0 and not yielded):  # a unit without records still gives the schema its block
            yield block()


def _overlapped(cfg: RunConfig, todo: list[Unit], clean_dir: str | None, storage_options: dict,
                start_ray: Callable[[], None] | None, with_driver: bool = True) -> tuple[DriverUnits | None, ray.data.Dataset | None]:
    """With `start_ray` (Ray not started yet): the driver's units started (`DriverUnits`,
    `with_driver`), then Ray. Returns them and the (lazy) tasks of the units the driver did not
    take: None when there are none."""
    mine = DriverUnits.start(cfg, todo, clean_dir, storage_options) if start_ray is not None and with_driver else None
    if start_ray is not None:
        start_ray()
    taken = {u.key for u in mine.stop()} if mine is not None else set()
    if not todo or len(taken) == len(todo):
        return mine, None
    return mine, _unit_tasks(cfg, todo, clean_dir, storage_options, skip=taken)


def _unit_tasks(cfg: RunConfig, todo: list[Unit], clean_dir: str | None, storage_options: dict, skip: set[str] = frozenset()) -> ray.data.Dataset:
    """One `_stage_units` task per unit of `todo` but those in `skip` (keys of the driver's units);
    a unit's ordinal is its place in `todo` either way."""
    rows = [{"source": u.source, "key": u.key, "ordinal": i, "items": json.dumps(u.items)}
            for i, u in enumerate(number_ranges(cfg, todo)) if u.key not in skip]
    return ray.data.from_items(rows, override_num_blocks=len(rows)).map_batches(
        _stage_units, batch_size=1, batch_format="pyarrow",
        fn_kwargs={"cfg_json": cfg.model_dump_json(), "clean_dir": clean_dir, "storage_options": storage_options},
    )


def number_ranges(cfg: RunConfig, todo: list[Unit]) -> list[Unit]:
    """`todo` with `newlines_before` set on every byte range after a file's first, so its reader
    numbers lines as in the whole file (ingest/ranges.py). The newlines before each needed start are
    counted by parallel tasks over pieces of at most unit_bytes, one pass over each cut file's prefix
    (Ray Data, so the tasks run where the build's other curation tasks do)."""
    starts: dict[tuple[str, str], set[int]] = {}
    for u in todo:
        for it in u.items:
            if it.get("end") is not None and int(it["start"]) > 0:
                starts.setdefault((u.source, it["url"]), set()).add(int(it["start"]))
    if not starts:
        return todo
    step, pieces = cfg.staging.unit_bytes, []
    for (source, url), need in starts.items():
        bounds = sorted({0, *need, *range(step, max(need), step)})
        pieces += [{"source": source, "url": url, "a": a, "b": b} for a, b in zip(bounds, bounds[1:])]
    options = {s.name: s.storage_options for s in cfg.sources}
    counted = ray.data.from_items(pieces, override_num_blocks=len(pieces)).map(
        _count_piece, fn_kwargs={"options_json": json.dumps(options)}).take_all()
    by_file: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for r in counted:
        by_file.setdefault((r["source"], r["url"]), []).append((int(r["b"]), int(r["n"])))
    before: dict[tuple[str, str, int], int] = {}
    for (source, url), counts in by_file.items():
        total = 0
        for b, n in sorted(counts):  # the pieces tile [0, last start): a running sum
            total += n
            before[(source, url, b)] = total  # newlines in [0, b)
    def numbered(u: Unit) -> Unit:
        items = [{**it, "newlines_before": before[(u.source, it["url"], int(it["start"]))]}
                 if it.get("end") is not None and int(it["start"]) > 0 else it for it in u.items]
        return Unit(u.source, u.key, items)
    return [numbered(u) for u in todo]


def _count_piece(row: dict, options_json: str) -> dict:
    so = json.loads(options_json)[row["source"]]
    return {**row, "n": ranges.count_newlines(row["url"], so, int(row["a"]), int(row["b"]))}


def unit_records(cfg: RunConfig, source: str, items: list[dict]) -> Iterator[pa.Table]:
    """One unit's records, read and cleaned, in TRACED_SCHEMA blocks of at most `read_batch_size` rows."""
    src = next(s for s in cfg.sources if s.name == source)
    for block in read_items(src, items, cfg.read_batch_size, cfg.clean.extract):
        block = clean_batch(block, cfg.clean) if cfg.clean.enabled else changes.with_columns(block, [0] * block.num_rows, {})
        yield block.select(TRACED_SCHEMA.names).cast(TRACED_SCHEMA)


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
        # Locally written beside and renamed over, as an object store's upload completes whole: a
        # task of a killed driver that Ray has not yet reaped and the rerun's task for the same unit
        # may both write it; each rename installs a complete file (the same records).
        local = storage.is_local(clean_dir)
        target = f"{path}.tmp-{uuid.uuid4().hex}" if local else path
        n, size, first_at = 0, 0, None
        with fs.open(target, "wb") as f, pq.ParquetWriter(f, STAGED_SCHEMA) as writer:
            for block in blocks:
                first_at = first_at or time.time()  # the build's "first_record_s" (time_profile.py)
                writer.write_table(block)
                n, size = n + block.num_rows, size + block.nbytes
        if local:
            os.replace(target, path)
        done = {"rows": n, "bytes": size}  # bytes: the records in memory (Arrow), what sizes the dedup shuffles
        storage.write_text(storage.join(clean_dir, f"{row['key']}.done"), json.dumps(done), storage_options)
        yield pa.Table.from_pylist([{"key": row["key"], **done, "first_at": first_at}], schema=_STAGED)
