"""Tiny hand-written SFT datasets (the build's output layout) for the fine-tuning tests."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sft_ray.schema import SFT_SCHEMA

_CAPITALS = [("France", "Paris"), ("Germany", "Berlin"), ("Italy", "Rome"), ("Spain", "Madrid"),
             ("Portugal", "Lisbon"), ("Austria", "Vienna"), ("Poland", "Warsaw"), ("Greece", "Athens"),
             ("Norway", "Oslo"), ("Sweden", "Stockholm"), ("Finland", "Helsinki"), ("Ireland", "Dublin")]


def example(i: int, split: str) -> dict:
    country, capital = _CAPITALS[i % len(_CAPITALS)]
    messages = [{"role": "user", "content": f"What is the capital of {country}?"},
                {"role": "assistant", "content": f"The capital of {country} is {capital}."}]
    if i % 3 == 0:
        messages.insert(0, {"role": "system", "content": "Answer in one sentence."})
    return {"id": f"{split}-{i}", "task": "qa", "messages": messages, "source": "capitals",
            "source_id": f"capitals-{i}", "split": split}


def write_sft(output: Path, n_train: int = 48, n_val: int = 12, files: int = 2, manifest: bool = True) -> Path:
    """<output>/sft/{train,validation}/*.parquet (+ manifest.json with the sft counts)."""
    for split, n in (("train", n_train), ("validation", n_val)):
        d = output / "sft" / split
        d.mkdir(parents=True, exist_ok=True)
        rows = [example(i, split) for i in range(n)]
        per = -(-n // files)
        for f in range(files):
            chunk = rows[f * per:(f + 1) * per]
            if chunk:
                pq.write_table(pa.Table.from_pylist(chunk, schema=SFT_SCHEMA), d / f"part-{f:05d}.parquet")
    if manifest:
        (output / "manifest.json").write_text(json.dumps({"sft": {"train": n_train, "validation": n_val}}))
    return output
