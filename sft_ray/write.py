"""Write curated/ and rejects/, and gather every figure about the records, in one pass over them.

A block of tagged records is split into its curated rows and its rejects, each written as one
Parquet file, and the same task returns the block's small per-block figures: counts by source,
stage and reason (report/counts.py), the data profile (report/aggregates.py), unreadable input
files, and the dedup clusters' member counts (report/clusters.py). Before, each of those was a
separate scan of the records, which therefore had to stay pinned in the object store; now the
records are read once, and the later stages (format, the report's example texts) read the written
Parquet files back (docs/ARCHITECTURE.md, "Scale").

File names are a hash of the block's ids and metas, so a retried task rewrites the same files
rather than adding copies (two blocks with the same ids and metas would be the same records).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import ray

from sft_ray import schema
from sft_ray import storage
from sft_ray.report.aggregates import Profile
from sft_ray.report.aggregates import profile_block
from sft_ray.report.clusters import members_block
from sft_ray.report.counts import count_groups, record_groups
from sft_ray.tags import live_mask

_PIECES = {"counts": record_groups, "profile": profile_block, "members": members_block}
_UNREADABLE = "unreadable"
# The clusters' member rows (one per survivor and reason) stay on the driver up to this size, where
# the report sums them without a shuffle; a shuffle's setup alone took 1.4 s of a 20k-document
# build's report (`benchmarks/near_dedup.py --build`). Above it they stay a distributed Dataset.
MEMBERS_ON_DRIVER_BYTES = 64 << 20
PIECES_SCHEMA = pa.schema([("piece", pa.string()), ("ipc", pa.binary())])


@dataclass
class Written:
    """What the one pass learnt: counts (report/counts.py), unreadable input files, the data
    profile (report/aggregates.py) and the dedup clusters' member rows: a table when they are small
    (`MEMBERS_ON_DRIVER_BYTES`), else a Dataset."""

    counts: dict
    unreadable: list[dict]
    profile: dict
    members: pa.Table | ray.data.Dataset


def select(table: pa.Table, live: bool) -> pa.Table:
    """Curated rows lose the tag columns; rejects are reshaped to the rejects schema."""
    mask = live_mask(table)
    if live:
        return table.filter(mask).select(schema.CURATED_COLUMNS)
    t = table.filter(pc.invert(mask))
    pair_text = pc.binary_join_element_wise(t[schema.SRC_TEXT], t[schema.TGT_TEXT], "\t")
    text = pc.if_else(pc.is_null(t[schema.TEXT]), pair_text, t[schema.TEXT])
    return pa.table(
        {
            schema.ID: t[schema.ID], schema.SOURCE: t[schema.SOURCE], schema.KIND: t[schema.KIND], "stage": t[schema.REJECT_STAGE],
            "reason": t[schema.REJECT_REASON], schema.DUPLICATE_OF: t[schema.DUPLICATE_OF], schema.TEXT: text, schema.META: t[schema.META],
        },
        schema=schema.REJECT_SCHEMA,
    )


def _to_ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as w:
        w.write_table(table)
    return sink.getvalue().to_pybytes()


def _from_ipc(ipc: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(ipc)).read_all()


def pieces_table(pieces: dict[str, pa.Table]) -> pa.Table:
    """A task's small per-block figures, one row per named piece (Arrow IPC), for the driver to fold."""
    return pa.table({"piece": list(pieces), "ipc": [_to_ipc(t) for t in pieces.values()]}, schema=PIECES_SCHEMA)


def iter_pieces(figures: ray.data.Dataset):
    """(piece name, table) of every block's figures, streamed to the driver."""
    for batch in figures.iter_batches(batch_format="pyarrow", batch_size=None):
        for piece, ipc in zip(batch["piece"].to_pylist(), batch["ipc"].to_pylist()):
            yield piece, _from_ipc(ipc)


def block_name(table: pa.Table, columns: tuple[str, ...] = (schema.ID, schema.META)) -> str:
    """A hash of the block's ids and metas (or other `columns`). Of their values, not their buffers: a
    block that is a slice of a larger table shares its parent's buffers, and two slices must not
    share a name."""
    h = hashlib.blake2b(digest_size=12)
    for col in columns:
        for v in table[col].to_pylist():
            h.update((v or "").encode())
            h.update(b"\0")
    return h.hexdigest()


def write_part(part: pa.Table, out: str, sub: str, name: str, arrow_schema: pa.Schema, storage_options: dict) -> None:
    """One block's rows of one output folder as `<sub>/part-<name>.parquet` (nothing when it has none)."""
    if part.num_rows:
        fs, path = storage.get_fs(storage.join(out, sub, f"part-{name}.parquet"), storage_options)
        fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
        with fs.open(path, "wb") as f:
            pq.write_table(part.cast(arrow_schema), f)


def _write_block(table: pa.Table, out: str, storage_options: dict) -> pa.Table:
    """Ray task body: write the block's curated rows and rejects; return its figures as IPC pieces."""
    if table.num_rows == 0:
        return PIECES_SCHEMA.empty_table()
    table = table.combine_chunks()
    name = block_name(table)
    for sub, live, arrow_schema in (("curated", True, schema.CURATED_SCHEMA), ("rejects", False, schema.REJECT_SCHEMA)):
        write_part(select(table, live), out, sub, name, arrow_schema, storage_options)
    unreadable = table.filter(pc.equal(table[schema.REJECT_REASON], "unreadable_file")).select([schema.SOURCE, schema.META])
    pieces = {**{k: fn(table) for k, fn in _PIECES.items()}, _UNREADABLE: unreadable}
    return pieces_table(pieces)


def _members(batch: pa.Table) -> pa.Table:
    tables = [_from_ipc(b) for p, b in zip(batch["piece"].to_pylist(), batch["ipc"].to_pylist()) if p == "members"]
    return pa.concat_tables(tables) if tables else members_block(schema.empty_records())


def write_records(records: ray.data.Dataset, out: str, storage_options: dict) -> Written:
    """The one pass: curated/ and rejects/ written, figures gathered (small rows to the driver)."""
    figures = records.map_batches(_write_block, batch_format="pyarrow", fn_kwargs={"out": out, "storage_options": storage_options}).materialize()
    rows: dict[str, list] = {"counts": [], _UNREADABLE: []}
    profile = Profile()  # summed block by block: its samples stay bounded (report/sample.py)
    members: list[pa.Table] | None = []  # None once they outgrow MEMBERS_ON_DRIVER_BYTES
    members_bytes = 0
    for piece, table in iter_pieces(figures):
        if piece == "profile":
            profile.add(table.to_pylist())
        elif piece in rows:
            rows[piece] += table.to_pylist()
        elif piece == "members" and members is not None:
            members.append(table)
            members_bytes += table.nbytes
            if members_bytes > MEMBERS_ON_DRIVER_BYTES:
                members = None
    unreadable = sorted(({"source": r[schema.SOURCE], **json.loads(r[schema.META])} for r in rows[_UNREADABLE]),
                        key=lambda r: (r["source"], r["file"]))
    if members is None:
        gathered: pa.Table | ray.data.Dataset = figures.map_batches(_members, batch_format="pyarrow")
    else:
        gathered = pa.concat_tables([members_block(schema.empty_records()), *members])
    return Written(count_groups(rows["counts"]), unreadable, profile.result(), gathered)


def read_written(out: str, sub: str, storage_options: dict, arrow_schema: pa.Schema) -> ray.data.Dataset:
    """A folder this module (or build.py's empty-folder guard) wrote, read back as a Dataset of one
    block per file. The files were written one per block, so they are block-sized already; Ray
    Data's default would split each read into up to 200 / files pieces (`read_op_min_num_blocks`),
    and every later map would run that many tasks: 44 tasks for 2 files of 14 MB, which made the
    report's cluster examples of a 20k-document build take 6.6 s instead of ~1 s
    (`benchmarks/near_dedup.py --build`). Blocks larger than `target_max_block_size` are still cut
    as they are read."""
    import pyarrow.fs as pafs

    fs, path = storage.pyarrow_fs(out, storage_options)
    folder = storage.join(path, sub)
    files = [f.path for f in fs.get_file_info(pafs.FileSelector(folder)) if f.path.endswith(".parquet")]
    # The listed files themselves: the folder is listed once (one LIST on object storage, not two).
    return ray.data.read_parquet(files or folder, filesystem=fs, schema=arrow_schema, override_num_blocks=max(1, len(files)))


def tagged_view(out: str, storage_options: dict) -> ray.data.Dataset:
    """curated/ and rejects/ read back as records with their tag columns (the columns the report's
    cluster examples read): rejects' stage/reason become the tag columns again."""
    curated = read_written(out, "curated", storage_options, schema.CURATED_SCHEMA).map_batches(_curated_tags, batch_format="pyarrow")
    rejects = read_written(out, "rejects", storage_options, schema.REJECT_SCHEMA).map_batches(_reject_tags, batch_format="pyarrow")
    return curated.union(rejects)


_VIEW = [schema.ID, schema.SOURCE, schema.TEXT, schema.SRC_TEXT, schema.TGT_TEXT, schema.REJECT_STAGE, schema.REJECT_REASON, schema.DUPLICATE_OF]
_VIEW_SCHEMA = pa.schema([schema.RECORD_SCHEMA.field(c) for c in _VIEW])


def _curated_tags(t: pa.Table) -> pa.Table:
    n = t.num_rows
    cols = {c: t[c] if c in t.column_names else pa.nulls(n, pa.string()) for c in _VIEW}
    return pa.Table.from_arrays([cols[c] for c in _VIEW], schema=_VIEW_SCHEMA)


def _reject_tags(t: pa.Table) -> pa.Table:
    n = t.num_rows
    cols = {schema.ID: t[schema.ID], schema.SOURCE: t[schema.SOURCE], schema.TEXT: t[schema.TEXT], schema.SRC_TEXT: pa.nulls(n, pa.string()),
            schema.TGT_TEXT: pa.nulls(n, pa.string()), schema.REJECT_STAGE: t["stage"], schema.REJECT_REASON: t["reason"],
            schema.DUPLICATE_OF: t[schema.DUPLICATE_OF]}
    return pa.Table.from_arrays([cols[c] for c in _VIEW], schema=_VIEW_SCHEMA)
