"""The teacher's request cache: `<output>/_cache/teacher/part-*.parquet`, via fsspec (s3:// works).

A request's key is blake2b(model, generation parameters, prompt), so a rerun with the same model
and settings finds every output it already paid for, and a changed prompt, model or budget misses.
One Parquet file per actor batch that generated anything (not one object per prompt: object
stores charge per request), named by a hash of its keys, written to a temporary name and renamed
(local) or put in one request (object stores), so a reader never sees half a file. Actors read the
whole index once at start: memory grows with the cache (~100 bytes + the output per entry), which
suits teacher-sized workloads (thousands to a few million generations), not billions.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Container

import pyarrow as pa
import pyarrow.parquet as pq

from sft_ray import schema
from sft_ray import storage

log = logging.getLogger("sft_ray")
CACHE_SUBDIR = ("_cache", "teacher")
Index = dict[str, tuple[str, float | None, bool]]  # key -> (output, score, finished)


def cache_url(output: str) -> str:
    return storage.join(output, *CACHE_SUBDIR)


def request_key(model: str, params: dict, prompt: str) -> str:
    payload = json.dumps({"model": model, "params": params, "prompt": prompt}, sort_keys=True, ensure_ascii=False)
    return hashlib.blake2b(payload.encode("utf-8"), digest_size=16).hexdigest()


def _files(url: str, storage_options: dict | None) -> tuple[object, list[str]]:
    fs, path = storage.get_fs(url, storage_options)
    if not fs.exists(path):
        return fs, []
    return fs, sorted(p for p in fs.ls(path, detail=False) if p.rsplit("/", 1)[-1].startswith("part-") and p.endswith(".parquet"))


def read_index(url: str, storage_options: dict | None = None) -> Index:
    """key -> (output, score, finished) for every cached request; unreadable files are skipped, logged."""
    fs, files = _files(url, storage_options)
    index: Index = {}
    for f in files:
        try:
            with fs.open(f, "rb") as fh:
                t = pq.read_table(fh, columns=["key", "output", "score", "finished"])
        except Exception as e:  # noqa: BLE001 - a broken cache file costs regeneration, not the run
            log.warning("teacher cache: skipping unreadable %s (%s: %s)", f, type(e).__name__, e)
            continue
        for k, o, s, fin in zip(*(t[c].to_pylist() for c in ("key", "output", "score", "finished"))):
            index[k] = (o, s, bool(fin))
    return index


def write_entries(url: str, rows: list[dict], model: str, storage_options: dict | None = None) -> str | None:
    """One Parquet file holding `rows` ({key, output, score, finished}); returns its URL."""
    if not rows:
        return None
    keys = sorted(r["key"] for r in rows)
    name = "part-" + hashlib.blake2b("\n".join(keys).encode(), digest_size=12).hexdigest() + ".parquet"
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    table = pa.table(
        {
            "key": [r["key"] for r in rows], "output": [r["output"] for r in rows], "score": [r["score"] for r in rows],
            "finished": [bool(r["finished"]) for r in rows], "model": [model] * len(rows), "created": [created] * len(rows),
        },
        schema=schema.TEACHER_CACHE_SCHEMA,
    )
    fs, path = storage.get_fs(url, storage_options)
    fs.makedirs(path, exist_ok=True)
    final = f"{path.rstrip('/')}/{name}"
    if storage.is_local(url):
        tmp = f"{path.rstrip('/')}/.tmp-{uuid.uuid4().hex}"
        with fs.open(tmp, "wb") as fh:
            pq.write_table(table, fh)
        fs.mv(tmp, final)
    else:  # one PUT: an object appears whole or not at all
        with fs.open(final, "wb") as fh:
            pq.write_table(table, fh)
    return final


def cache_stats(output: str, storage_options: dict | None = None) -> dict:
    """{"files": n, "entries": n} of a run's teacher cache (benchmarks and tests)."""
    url = cache_url(output)
    _, files = _files(url, storage_options)
    return {"files": len(files), "entries": len(read_index(url, storage_options))}


def with_outputs(requests: pa.Table, index: Index, generated: Container[str] = (), errors: dict[str, str] | None = None) -> pa.Table:
    """Requests (TEACHER_REQUEST_SCHEMA) + the generated fields (TEACHER_GENERATED_FIELDS) from `index`.

    `generated`: keys generated for this batch (so not `cached`, though `index` now holds them);
    `errors`: key -> why its generation failed (output null). Both backends fill their rows here."""
    errors = errors or {}
    cols: dict[str, list] = {f.name: [] for f in schema.TEACHER_GENERATED_FIELDS}
    for k in requests["key"].to_pylist():
        out, score, fin = index.get(k, (None, None, False))
        for name, v in zip(cols, (out, score, fin, k in index and k not in generated, errors.get(k))):
            cols[name].append(v)
    for f in schema.TEACHER_GENERATED_FIELDS:
        requests = requests.append_column(f, pa.array(cols[f.name], f.type))
    return requests
