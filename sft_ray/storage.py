"""Filesystems, paths and atomic commit for local paths and any fsspec URL (s3://, gs://, ...).

Everything that touches storage goes through here so that a local run and an S3 run use the same
code: fsspec for listing and small files, a pyarrow filesystem (fsspec wrapped) for Ray Data's
readers/writers and Ray Train's `storage_filesystem`. `_SUCCESS` is written last and is the only
signal that a run's outputs are complete.
"""

from __future__ import annotations

import errno
import json
import os
import posixpath
import threading
from contextlib import contextmanager
from typing import Any, Iterator

import fsspec
import fsspec.config
import pyarrow.fs as pafs
from fsspec.core import url_to_fs

SUCCESS = "_SUCCESS"

# Object-store retries (S3 via s3fs -> aiobotocore/botocore). Two layers retry a request:
# botocore's retry handler (by HTTP status and error code, with backoff) and s3fs's own loop
# (`S3FileSystem.retries` = 5, by exception type and by "SlowDown" in the message). Measured with a
# faulty proxy in front of an S3 server (tests/reliability/test_store_faults.py): botocore's layer
# is the one that must hold, because S3 answers a throttled HEAD (every `exists`/`info`, and every
# open for reading) with a bare 503 and no body, which s3fs's message match cannot recognise.
# (Ray Data's `retried_io_errors` never engage here: they match pyarrow's native S3 messages.)
# botocore's default is whatever the node says (AWS_RETRY_MODE / AWS_MAX_ATTEMPTS / ~/.aws/config),
# and `standard` mode without a count makes only 3 attempts, so we pin it: `standard` mode retries
# connection errors, 500/502/503/504 and throttling codes (SlowDown included) with exponential
# backoff capped at 20 s and a retry quota that stops retry storms; 5 attempts in all (the first
# and 4 retries) is legacy mode's default. `total_max_attempts` counts the first request (client
# config `max_attempts` counts retries only). Sources: https://docs.aws.amazon.com/boto3/latest/guide/retries.html,
# https://docs.aws.amazon.com/sdkref/latest/guide/feature-retry-behavior.html, botocore/config.py.
# A store that stays down fails a call after about 10-40 s (5 attempts, times s3fs's 5 when the
# error says SlowDown). Options a user sets (`config_kwargs.retries`) win.
S3_RETRIES = {"mode": "standard", "total_max_attempts": 5}
_S3_PROTOCOLS = ("s3", "s3a")


def _with_retries(url: str, storage_options: dict[str, Any]) -> dict[str, Any]:
    """`storage_options` plus our S3 retry config when the URL is on S3 and none is set."""
    if url.split("://", 1)[0] not in _S3_PROTOCOLS:
        return storage_options
    ck = storage_options.get("config_kwargs") or {}
    if "retries" in ck:
        return storage_options
    return {**storage_options, "config_kwargs": {**ck, "retries": dict(S3_RETRIES)}}


# The same default for S3 filesystems made elsewhere with plain `fsspec.open(url, **options)` (the
# ingest readers, seed and benchmark files), in every process that imports this module: fsspec
# applies `fsspec.config.conf[protocol]` as default constructor arguments. Set only if absent, so an
# FSSPEC_S3 environment variable or a user's own fsspec config still decides.
fsspec.config.conf.setdefault("s3", {}).setdefault("config_kwargs", {"retries": dict(S3_RETRIES)})


class StoreError(OSError):
    """A storage call that failed after the retries above; the message names the URL."""


# errno values a store that is down, throttling or unreachable surfaces as (s3fs maps HTTP 503 to
# EBUSY, "Service Unavailable"; gcsfs/adlfs and sockets give the others).
_UNAVAILABLE = {errno.EBUSY, errno.EAGAIN, errno.ETIMEDOUT, errno.ECONNREFUSED, errno.ECONNRESET, errno.EHOSTUNREACH, errno.ENETUNREACH}


def is_store_failure(e: BaseException) -> bool:
    """A failure of the store itself (down, throttling past the retries, unreachable, access denied),
    as opposed to a bad file (truncated gzip, corrupt bytes). Readers record a bad file as a reject
    and go on; a store failure must fail the run instead of silently shrinking its output."""
    if isinstance(e, StoreError | PermissionError):
        return True
    if isinstance(e, OSError) and e.errno in _UNAVAILABLE:
        return True
    mod = type(e).__module__ or ""
    return mod.startswith(("botocore", "aiobotocore", "aiohttp", "urllib3", "requests", "google.api_core", "azure.core"))


@contextmanager
def _naming(url: str) -> Iterator[None]:
    """Re-raise a failed storage call (other than not-found) with the URL it was for named."""
    try:
        yield
    except (FileNotFoundError, StoreError):
        raise
    except Exception as e:  # noqa: BLE001 - botocore's connection errors are not OSErrors
        what = "failed" if is_local(url) else "failed after retries"
        raise StoreError(f"storage {url} {what}: {type(e).__name__}: {e}") from e


def get_fs(url: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(fsspec filesystem, path without protocol) for a URL or local path."""
    return url_to_fs(url, **_with_retries(url, storage_options or {}))


def pyarrow_fs(url: str, storage_options: dict[str, Any] | None = None) -> tuple[pafs.FileSystem, str]:
    """(pyarrow filesystem, path) for Ray Data / Ray Train. Local paths use the native local fs."""
    fs, path = get_fs(url, storage_options)
    if is_local(url):
        return pafs.LocalFileSystem(), path
    return pafs.PyFileSystem(pafs.FSSpecHandler(fs)), path


def is_local(url: str) -> bool:
    return "://" not in url or url.startswith("file://")


def join(url: str, *parts: str) -> str:
    """Join URL parts with '/', refusing parts that would escape the prefix."""
    for p in parts:
        if p.startswith("/") or ".." in p.split("/"):
            raise ValueError(f"refusing path component {p!r}: it would leave the output prefix")
    if is_local(url):
        return posixpath.join(url, *parts)
    return url.rstrip("/") + "/" + "/".join(p.strip("/") for p in parts)


def abs_output(url: str) -> str:
    """Local outputs become absolute so Ray workers on this node write where the driver reads."""
    if is_local(url):
        import os

        return os.path.abspath(url.removeprefix("file://"))
    return url


def exists(url: str, storage_options: dict | None = None) -> bool:
    fs, path = get_fs(url, storage_options)
    with _naming(url):
        return fs.exists(path)


def remove(url: str, storage_options: dict | None = None) -> None:
    fs, path = get_fs(url, storage_options)
    with _naming(url):
        if fs.exists(path):
            fs.rm(path, recursive=True)


def write_text(url: str, text: str, storage_options: dict | None = None) -> None:
    """Write a small file whole or not at all: an object store's PUT is atomic; a local file is
    written beside its target and renamed over it, so a process killed mid-write never leaves a
    half-written marker (`_SUCCESS`, `<unit>.done`, a dedup step's `_DONE`) for a rerun to trust."""
    fs, path = get_fs(url, storage_options)
    parent = posixpath.dirname(path)
    with _naming(url):
        if parent:
            fs.makedirs(parent, exist_ok=True)
        if not is_local(url):
            with fs.open(path, "w") as f:
                f.write(text)
            return
        tmp = f"{path}.tmp-{os.getpid()}-{threading.get_ident()}"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)


def read_text(url: str, storage_options: dict | None = None) -> str:
    fs, path = get_fs(url, storage_options)
    with _naming(url):
        with fs.open(path, "r") as f:
            return f.read()


def write_json(url: str, obj: Any, storage_options: dict | None = None) -> None:
    write_text(url, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", storage_options)


def read_json(url: str, storage_options: dict | None = None) -> Any:
    return json.loads(read_text(url, storage_options))


def check_writable(url: str, storage_options: dict | None = None, create: bool = True) -> None:
    """Fail fast, naming the URL, when the output location cannot be written. `create=False`: a local
    folder that does not exist yet is not created (its nearest existing parent must be writable)."""
    if not create and is_local(url):
        path = os.path.abspath(url.removeprefix("file://"))
        parent = path
        while not os.path.exists(parent):
            parent = os.path.dirname(parent)
        if not os.path.isdir(parent) or not os.access(parent, os.W_OK | os.X_OK):
            raise OSError(f"output {url} is not writable: {parent} is not a writable folder")
        return
    probe = join(url, "_write_probe")
    try:
        write_text(probe, "ok", storage_options)
        remove(probe, storage_options)
    except Exception as e:  # noqa: BLE001 - re-raised with the path named
        raise OSError(f"output {url} is not writable: {type(e).__name__}: {e}") from e
