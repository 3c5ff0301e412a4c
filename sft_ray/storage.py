"""Filesystems, paths and atomic commit for local paths and any fsspec URL (s3://, gs://, ...).

Everything that touches storage goes through here so that a local run and an S3 run use the same
code: fsspec for listing and small files, a pyarrow filesystem (fsspec wrapped) for Ray Data's
readers/writers and Ray Train's `storage_filesystem`. `_SUCCESS` is written last and is the only
signal that a run's outputs are complete.
"""

from __future__ import annotations

import json
import posixpath
from typing import Any

import fsspec
import pyarrow.fs as pafs
from fsspec.core import url_to_fs

SUCCESS = "_SUCCESS"


def get_fs(url: str, storage_options: dict[str, Any] | None = None) -> tuple[fsspec.AbstractFileSystem, str]:
    """(fsspec filesystem, path without protocol) for a URL or local path."""
    return url_to_fs(url, **(storage_options or {}))


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
    return fs.exists(path)


def remove(url: str, storage_options: dict | None = None) -> None:
    fs, path = get_fs(url, storage_options)
    if fs.exists(path):
        fs.rm(path, recursive=True)


def write_text(url: str, text: str, storage_options: dict | None = None) -> None:
    fs, path = get_fs(url, storage_options)
    parent = posixpath.dirname(path)
    if parent:
        fs.makedirs(parent, exist_ok=True)
    with fs.open(path, "w") as f:
        f.write(text)


def read_text(url: str, storage_options: dict | None = None) -> str:
    fs, path = get_fs(url, storage_options)
    with fs.open(path, "r") as f:
        return f.read()


def write_json(url: str, obj: Any, storage_options: dict | None = None) -> None:
    write_text(url, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n", storage_options)


def read_json(url: str, storage_options: dict | None = None) -> Any:
    return json.loads(read_text(url, storage_options))


def check_writable(url: str, storage_options: dict | None = None) -> None:
    """Fail fast, naming the URL, when the output location cannot be written."""
    probe = join(url, "_write_probe")
    try:
        write_text(probe, "ok", storage_options)
        remove(probe, storage_options)
    except Exception as e:  # noqa: BLE001 - re-raised with the path named
        raise OSError(f"output {url} is not writable: {type(e).__name__}: {e}") from e
