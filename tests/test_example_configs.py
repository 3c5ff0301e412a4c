"""The use-case configs in jobs/configs/ (classification from model labels, QA, sentiment with a
shipped seed, dialogue): each validates, names its command on its first lines and reads data shipped
in the repository; one build of all their sources (each cut to a few dozen rows, near dedup and
token counting off, no training) gives every use case its examples with the right `label_source`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sft_ray.config import RunConfig, config_dict, load_config

CONFIGS = Path(__file__).resolve().parents[1] / "jobs" / "configs"
USE_CASES = {"classification": "classification", "qa": "qa", "sentiment": "sentiment", "dialogue": "dialogue"}


@pytest.mark.parametrize("name", sorted(USE_CASES))
def test_config_validates_opens_with_its_command_and_ships_its_data(name):
    path = CONFIGS / f"{name}.yaml"
    assert f"sft-ray build --config jobs/configs/{name}.yaml" in "".join(path.read_text().splitlines(keepends=True)[:3])
    cfg = load_config(str(path), [])
    for src in cfg.sources:
        for p in src.path.values() if isinstance(src.path, dict) else [src.path]:
            assert Path(p).is_file(), p
        assert src.license
    assert USE_CASES[name] in {t for tasks in cfg.format.tasks.values() for t in tasks}


@pytest.mark.slow
def test_one_build_of_every_use_case(ray_local, tmp_path):
    cfgs = {name: config_dict(load_config(str(CONFIGS / f"{name}.yaml"), [])) for name in USE_CASES}
    sources = [{**src, "limit": min(src.get("limit") or 40, 40)} for c in cfgs.values() for src in c["sources"]]
    tasks = {kind: t for c in cfgs.values() for kind, t in c["format"]["tasks"].items()}
    label = {**cfgs["classification"]["label"], "sentiment": cfgs["sentiment"]["label"]["sentiment"], "concurrency": 1}
    label["topic"] = {**label["topic"], "seed": {**label["topic"]["seed"], "max_rows": 200}}
    label["sentiment"]["seed"]["max_rows"] = 200
    cfg = RunConfig.model_validate({
        "output": str(tmp_path / "out"), "sources": sources, "label": label,
        "dedup": {"num_partitions": 2, "near": {"enabled": False}},
        "format": {"tasks": tasks, "count_tokens": False, "validation_fraction": 0.1,
                   "min_label_confidence": {"classification": 0.5, "sentiment": 0.6}},
    })
    from sft_ray.build import build_sft_data

    m = build_sft_data(cfg).manifest
    out = tmp_path / "out"
    rows = [r for s in ("train", "validation") for r in pq.read_table(out / "sft" / s).to_pylist()]
    by = Counter((r["source"], r["task"], r["label_source"]) for r in rows)
    assert by[("news", "classification", "model")] > 0 and by[("news", "headline", "gold")] > 0
    assert by[("xquad-en", "qa", "gold")] > 0
    assert by[("rt-gold", "sentiment", "gold")] > 0 and by[("rt-unlabelled", "sentiment", "model")] > 0
    assert by[("chatterbot", "dialogue", "gold")] > 0
    assert all(r["label_confidence"] is None for r in rows if r["label_source"] == "gold")
    assert all(r["label_confidence"] >= 0.5 for r in rows if r["label_source"] == "model")
    kept = Counter((r["task"], r["label_source"]) for r in rows)
    assert m["sft"]["label_sources"]["classification"]["model"] == kept[("classification", "model")]
    assert m["sft"]["label_sources"]["sentiment"] == {k[1]: n for k, n in kept.items() if k[0] == "sentiment"}
    assert m["label"]["topic"]["rows"] == 200 and m["label"]["sentiment"]["rows"] == 200
