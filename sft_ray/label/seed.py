"""Read a labelled seed set (`SeedConfig`) from any fsspec URL and sample it, balanced over labels.

Seed texts go through the clean stage's repair + normalisation (entities, markup, whitespace), so
the classifier is fitted on text shaped like the curated records it will label.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from dataclasses import dataclass

import fsspec
import numpy as np

from sft_ray.config import CleanConfig, SeedConfig

_CLEAN = CleanConfig()


@dataclass
class SeedRow:
    text: str
    label: str  # label name
    position: str  # "<file>:<1-based row>": which rows were used, so evaluation can leave them out


@dataclass
class SeedSet:
    texts: list[str]
    labels: np.ndarray  # class indices into label_names
    label_names: list[str]
    positions: list[str]


def text_key(text: str) -> int:
    """A 64-bit fingerprint of a text, blind to case and whitespace: a record whose label text has the
    key of a seed text is that seed row (the report leaves such rows out of gold-vs-predicted)."""
    return int.from_bytes(hashlib.blake2b(" ".join(text.split()).casefold().encode(), digest_size=8).digest(), "big")


def load_seed(cfg: SeedConfig, where: str = "label.seed") -> SeedSet:
    """All rows, then a deterministic sample of at most `max_rows`, balanced over labels."""
    rows, names = read_seed_rows(cfg, where)
    picked = balanced_sample(rows, names, cfg.max_rows, cfg.sample_seed)
    return SeedSet(
        texts=[r.text for r in picked],
        labels=np.array([names.index(r.label) for r in picked], dtype=np.int64),
        label_names=names,
        positions=[r.position for r in picked],
    )


def read_seed_rows(cfg: SeedConfig, where: str = "label.seed") -> tuple[list[SeedRow], list[str]]:
    """Every usable row of the seed files (empty texts skipped) and the class order."""
    rows: list[SeedRow] = []
    if cfg.format == "lines":
        for label, url in cfg.path.items():
            for pos, line in _lines(url, cfg, where):
                rows.append(SeedRow(line, label, pos))
        found = list(cfg.path)
    else:
        for pos, rec in _records(cfg, where):
            missing = [f for f in [*cfg.text_fields, cfg.label_field] if str(f) not in rec]
            if missing:
                raise ValueError(f"{where}: {pos} has no field(s) {missing}; has {sorted(rec)[:12]}")
            text = "\n".join(str(rec[str(f)]) for f in cfg.text_fields if rec[str(f)] not in (None, ""))
            label = rec[str(cfg.label_field)]
            if label is None or label == "":
                continue
            rows.append(SeedRow(text, str(label), pos))
        found = sorted({r.label for r in rows})
    if cfg.label_names:
        unknown = sorted({r.label for r in rows} - set(cfg.label_names))
        if unknown:
            raise ValueError(f"{where}.label_names has no entry for gold value(s) {unknown[:10]}")
        for r in rows:
            r.label = cfg.label_names[r.label]
        names = list(dict.fromkeys(cfg.label_names.values()))
    else:
        names = found
    for r in rows:
        r.text = _clean(r.text)
    rows = [r for r in rows if r.text]
    if len({r.label for r in rows}) < 2:
        raise ValueError(f"{where}: needs rows of at least two labels, found {sorted({r.label for r in rows})}")
    return rows, names


def balanced_sample(rows: list[SeedRow], names: list[str], max_rows: int, seed: int) -> list[SeedRow]:
    """Round-robin over labels (each shuffled with `seed`) until `max_rows`: small seeds stay balanced."""
    rng = np.random.default_rng(seed)
    by_label = {n: [r for r in rows if r.label == n] for n in names}
    queues = [[by_label[n][i] for i in rng.permutation(len(by_label[n]))] for n in names]
    picked: list[SeedRow] = []
    depth = 0
    while len(picked) < max_rows and any(depth < len(q) for q in queues):
        for q in queues:
            if depth < len(q) and len(picked) < max_rows:
                picked.append(q[depth])
        depth += 1
    return picked


def _clean(text: str) -> str:
    from sft_ray.clean.normalize import normalize_text, repair_text

    return normalize_text(repair_text(text, _CLEAN)) or ""


def _open_files(url: str, cfg: SeedConfig, where: str):
    files = fsspec.open_files(url, "rb", compression="infer", **cfg.storage_options)
    if not files:
        raise FileNotFoundError(f"{where}.path: {url} matches no files")
    return sorted(files, key=lambda f: f.path)


def _text(f, cfg: SeedConfig, where: str) -> str:
    try:
        return f.read().decode(cfg.encoding)
    except UnicodeDecodeError as e:
        raise ValueError(f"{where}: {f.path} is not {cfg.encoding} ({e}); set {where}.encoding (e.g. latin-1)") from None


def _lines(url: str, cfg: SeedConfig, where: str):
    for of in _open_files(url, cfg, where):
        with of as f:
            for n, line in enumerate(_text(f, cfg, where).splitlines(), start=1):
                if line.strip():
                    yield f"{of.path}:{n}", line


def _records(cfg: SeedConfig, where: str):
    for of in _open_files(cfg.path, cfg, where):
        with of as f:
            if cfg.format == "parquet":
                import pyarrow.parquet as pq

                for n, rec in enumerate(pq.read_table(f).to_pylist(), start=1):
                    yield f"{of.path}:{n}", {k: v for k, v in rec.items()}
                continue
            text = _text(f, cfg, where)
        if cfg.format == "jsonl":
            for n, line in enumerate(text.splitlines(), start=1):
                if line.strip():
                    yield f"{of.path}:{n}", json.loads(line)
        else:
            reader = csv.reader(io.StringIO(text, newline=""), delimiter="," if cfg.format == "csv" else "\t")
            header = next(reader) if cfg.header else None
            for n, row in enumerate(reader, start=2 if header else 1):
                if row:
                    yield f"{of.path}:{n}", dict(zip(header, row)) if header else {str(i): v for i, v in enumerate(row)}
