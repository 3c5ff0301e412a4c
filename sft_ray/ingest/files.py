"""Expand a source's path (file, glob or prefix on any fsspec URL) into a sorted list of files.

Listing happens on the driver (it is metadata only); reading happens in Ray tasks. A path that
matches nothing fails fast with the path named: a typo must never turn into an empty dataset.

Each file carries a content *version*, so a staged unit (staging.py) and a finished build
(rebuild.py) know when a file changed even at the same size. On object stores it is what the
listing already returns, no extra request: the ETag (S3, Azure; a hash of the content or of its
parts) or the generation (GCS). Locally it is mtime in nanoseconds + inode: every write updates
mtime, and an editor or rsync that replaces the file gets a new inode even when it preserves
mtime (`cp -p`, `rsync -t`). A content hash would read every byte of a 10 TB corpus on the driver
before the first task starts; the cost of mtime + inode is that an in-place write that restores
the old mtime (`touch -d`) goes unseen.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from sft_ray.config import SourceConfig
from sft_ray.storage import get_fs

GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    url: str  # full URL with protocol (what readers open)
    rel: str  # path relative to the source's base (what ids and meta record)
    size: int
    version: str  # content version (module docstring)


class InputNotFound(FileNotFoundError):
    pass


def _protocol_prefix(url: str) -> str:
    return url.split("://", 1)[0] + "://" if "://" in url else ""


def version_of(path: str, info: dict, local: bool) -> str:
    """A file's content version from its listing entry (module docstring)."""
    if local:
        st = os.stat(path)
        return f"mtime_ns={st.st_mtime_ns},ino={st.st_ino}"
    for key in ("VersionId", "generation", "ETag", "etag", "md5Hash", "LastModified", "last_modified", "mtime", "updated"):
        if info.get(key):
            return f"{key}={info[key]}"
    return ""


def expand(url: str, storage_options: dict, exclude: str | None = None) -> list[InputFile]:
    """The files `url` names (a file, a glob, or everything under a folder but hidden `.`/`_`
    names), sorted, with sizes and content versions from one listing. Files under `exclude` (the
    build's own output, when it lies inside a source folder) are never inputs."""
    fs, path = get_fs(url, storage_options)
    prefix = _protocol_prefix(url)
    try:
        if any(c in path for c in GLOB_CHARS):
            base = path.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0]
            found = {p: i for p, i in fs.glob(path, detail=True).items() if i.get("type") == "file"}
        elif fs.isdir(path):
            base = path.rstrip("/")
            found = {p: i for p, i in fs.find(path, detail=True).items() if not p.rsplit("/", 1)[-1].startswith((".", "_"))}
        elif fs.isfile(path):
            base, found = path.rsplit("/", 1)[0] if "/" in path else "", {path: fs.info(path)}
        else:
            found = {}
    except (PermissionError, OSError) as e:
        raise InputNotFound(f"input {url} cannot be listed: {type(e).__name__}: {e}") from e
    if exclude is not None:
        _, skip = get_fs(exclude, storage_options)
        found = {p: i for p, i in found.items() if not (p + "/").startswith(skip.rstrip("/") + "/")}
    if not found:
        raise InputNotFound(f"input {url} matches no files" + (f" outside the output {exclude}" if exclude else ""))
    out = []
    local = prefix in ("", "file://")
    for p in sorted(found):
        info = found[p]
        rel = p[len(base) :].lstrip("/") if base and p.startswith(base) else p.rsplit("/", 1)[-1]
        out.append(InputFile(url=prefix + p if prefix else p, rel=rel, size=int(info.get("size") or 0), version=version_of(p, info, local)))
    return out


def list_source_files(src: SourceConfig, exclude: str | None = None) -> list[dict]:
    """Work items for the readers: one per file, or per (src, tgt) file pair for bitext. `exclude`:
    the build's output, whose files are never read back as inputs."""
    if src.format == "bitext":
        assert isinstance(src.path, dict)
        srcs = expand(src.path["src"], src.storage_options, exclude)
        tgts = expand(src.path["tgt"], src.storage_options, exclude)
        if len(srcs) != len(tgts):
            raise InputNotFound(
                f"source {src.name}: bitext src matches {len(srcs)} files but tgt matches {len(tgts)}; "
                "they are paired in sorted order and must match one to one"
            )
        return [
            {"url": s.url, "rel": s.rel, "size": s.size + t.size, "version": s.version, "tgt_url": t.url, "tgt_rel": t.rel,
             "tgt_version": t.version}
            for s, t in zip(srcs, tgts)
        ]
    if isinstance(src.path, dict):  # format=lines: {label name: URL}
        return [{"url": f.url, "rel": f.rel, "size": f.size, "version": f.version, "tgt_url": None, "tgt_rel": None, "label": label}
                for label, url in sorted(src.path.items()) for f in expand(url, src.storage_options, exclude)]
    return [{"url": f.url, "rel": f.rel, "size": f.size, "version": f.version, "tgt_url": None, "tgt_rel": None}
            for f in expand(src.path, src.storage_options, exclude)]
