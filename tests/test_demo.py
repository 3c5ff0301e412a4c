"""README's first command builds: the embedded demo's data build, end to end on a local Ray."""

from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from sft_ray.build import build_sft_data
from sft_ray.config import load_config

pytestmark = pytest.mark.slow


def test_the_demo_builds(ray_local, tmp_path):
    res = build_sft_data(load_config(None, [f"output={tmp_path / 'demo'}"]))
    c = res.manifest["counts"]
    assert (tmp_path / "demo" / "_SUCCESS").is_file() and c["input"] == c["kept"] + c["rejected"] and c["kept"] > 0
    assert set(c["by_source"]) == {"agnews", "m30k-en-de"}
    train = pq.read_table(tmp_path / "demo" / "sft" / "train")
    assert train.num_rows == res.manifest["sft"]["train"] > 0
    assert {"classification", "translation"} <= set(train.column("task").to_pylist())
