"""Expand a source's path (file, glob or prefix on any fsspec URL) into a sorted list of files.

Listing happens on the driver (it is metadata only); reading happens in Ray tasks. A path that
matches nothing fails fast with the path named: a typo must never turn into an empty dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

from sft_ray.config import SourceConfig
from sft_ray.storage import get_fs

GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class InputFile:
    url: str  # full URL with protocol (what readers open)
    rel: str  # path relative to the source's base (what ids and meta record)
    size: int


class InputNotFound(FileNotFoundError):
    pass


def _protocol_prefix(url: str) -> str:
    return url.split("://", 1)[0] + "://" if "://" in url else ""


def expand(url: str, storage_options: dict) -> list[InputFile]:
    fs, path = get_fs(url, storage_options)
    prefix = _protocol_prefix(url)
    try:
        if any(c in path for c in GLOB_CHARS):
            base = path.split("*")[0].split("?")[0].split("[")[0].rsplit("/", 1)[0]
            found = sorted(p for p in fs.glob(path) if fs.isfile(p))
        elif fs.isdir(path):
            base = path.rstrip("/")
            found = sorted(p for p in fs.find(path) if not p.rsplit("/", 1)[-1].startswith((".", "_")))
        elif fs.isfile(path):
            base, found = path.rsplit("/", 1)[0] if "/" in path else "", [path]
        else:
            found = []
    except (PermissionError, OSError) as e:
        raise InputNotFound(f"input {url} cannot be listed: {type(e).__name__}: {e}") from e
    if not found:
        raise InputNotFound(f"input {url} matches no files")
    out = []
    for p in found:
        info = fs.info(p)
        rel = p[len(base) :].lstrip("/") if base and p.startswith(base) else p.rsplit("/", 1)[-1]
        out.append(InputFile(url=prefix + p if prefix else p, rel=rel, size=int(info.get("size") or 0)))
    return out


def list_source_files(src: SourceConfig) -> list[dict]:
    """Work items for the readers: one per file, or per (src, tgt) file pair for bitext."""
    if src.format == "bitext":
        assert isinstance(src.path, dict)
        srcs = expand(src.path["src"], src.storage_options)
        tgts = expand(src.path["tgt"], src.storage_options)
        if len(srcs) != len(tgts):
            raise InputNotFound(
                f"source {src.name}: bitext src matches {len(srcs)} files but tgt matches {len(tgts)}; "
                "they are paired in sorted order and must match one to one"
            )
        return [
            {"url": s.url, "rel": s.rel, "size": s.size + t.size, "tgt_url": t.url, "tgt_rel": t.rel}
            for s, t in zip(srcs, tgts)
        ]
    if isinstance(src.path, dict):  # format=lines: {label name: URL}
        return [{"url": f.url, "rel": f.rel, "size": f.size, "tgt_url": None, "tgt_rel": None, "label": label}
                for label, url in sorted(src.path.items()) for f in expand(url, src.storage_options)]
    return [{"url": f.url, "rel": f.rel, "size": f.size, "tgt_url": None, "tgt_rel": None} for f in expand(src.path, src.storage_options)]
