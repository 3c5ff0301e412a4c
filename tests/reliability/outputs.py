"""Compare build outputs by content: per folder, a hash over its rows sorted by id."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow.parquet as pq

FOLDERS = ("curated", "rejects", "sft/train", "sft/validation")


def digest(out: Path) -> dict[str, str]:
    """Row order and file names may differ between runs; ids and content may not."""
    result = {}
    for sub in FOLDERS:
        rows = sorted(pq.read_table(out / sub).to_pylist(), key=lambda r: r["id"])
        result[sub] = hashlib.sha256(json.dumps(rows, sort_keys=True, default=str).encode()).hexdigest()[:16] + f"/{len(rows)}"
    return result
