"""Nothing stale or doubled after reruns, edits and concurrent builds (real builds on a local Ray).

- a finished build reruns as "already complete" only for the same config and inputs; a changed
  file (even at the same size) or config is refused naming what changed, and `overwrite` restages
  only the changed unit;
- a second build on an output being built is refused naming the holder; SIGTERM stops the holder's
  tasks, and a build started right after completes;
- an output inside its source folder never reads itself back;
- an empty training set fails before Ray Train with the numbers.
Every input record ends in exactly one of curated/ or rejects/.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig
from sft_ray.output import OutputBusy, OutputError
from sft_ray.preflight import PreflightError
from tests.conftest import DEMO_DATA
from tests.reliability.test_resume import N_FILES, start_build

pytestmark = pytest.mark.slow


def _news(d: Path, files: int = 4, rows: int = 30) -> None:
    """Real AG News rows as JSONL files with a one-digit gold label (so an edit can keep the size)."""
    with open(DEMO_DATA / "ag_news_test_part.csv", newline="") as f:
        news = list(csv.reader(f))
    d.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        with open(d / f"part{i}.jsonl", "w") as f:
            for label, title, text in news[i * rows:(i + 1) * rows]:
                f.write(json.dumps({"label": label, "title": title, "text": text}) + "\n")


def _cfg(src: str, out: Path, **extra) -> RunConfig:
    return RunConfig.model_validate({
        "output": str(out), "dedup": {"num_partitions": 2}, "staging": {"group_small_files": False, "keep_work": True},
        "sources": [{"name": "news", "kind": "news", "format": "jsonl", "path": src, "langs": {"text": "en"},
                     "label_names": {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}}], **extra})


def _ids(out: Path, sub: str) -> list[str]:
    return pq.read_table(out / sub, columns=["id"]).column("id").to_pylist()


def _accounted(out: Path, n_input: int) -> None:
    kept, rejected = _ids(out, "curated"), _ids(out, "rejects")
    assert len(kept) + len(rejected) == n_input and not set(kept) & set(rejected) and len(set(kept)) == len(kept)


def test_changed_inputs_or_config_are_refused_and_overwrite_restages_only_the_changed_unit(ray_local, tmp_path):
    src = tmp_path / "in"
    _news(src)
    out = tmp_path / "out"
    first = build_sft_data(_cfg(str(src / "*.jsonl"), out))
    _accounted(out, 120)
    curated = sorted(_ids(out, "curated"))
    assert build_sft_data(_cfg(str(src / "*.jsonl"), out)).skipped  # same config, same inputs

    # A same-size, in-place label edit of one file.
    p = src / "part1.jsonl"
    lines = p.read_text().splitlines(keepends=True)
    edited = [ln.replace('"label": "1"', '"label": "4"').replace('"label": "2"', '"label": "4"').replace('"label": "3"', '"label": "4"')
              for ln in lines]
    size = p.stat().st_size
    p.write_text("".join(edited))
    assert p.stat().st_size == size
    with pytest.raises(OutputError, match=r"inputs changed: 1 file\(s\) changed \(e\.g\. .*part1\.jsonl\)"):
        build_sft_data(_cfg(str(src / "*.jsonl"), out))
    with pytest.raises(OutputError, match=r"config changed: clean\.min_chars \(20 -> 200\)"):
        build_sft_data(_cfg(str(src / "*.jsonl"), out, clean={"min_chars": 200}))
    assert (out / "_SUCCESS").is_file() and sorted(_ids(out, "curated")) == curated  # refused: untouched

    res = build_sft_data(_cfg(str(src / "*.jsonl"), out, overwrite=True))
    assert res.manifest["resume"] == {"units": 4, "reused": 3}  # only the edited file is read and cleaned again
    labels = {r["meta"]: r["label"] for r in pq.read_table(out / "curated", columns=["meta", "label"]).to_pylist()}
    part1 = [lab for meta, lab in labels.items() if json.loads(meta)["file"] == "part1.jsonl"]
    assert part1 and set(part1) == {"Sci/Tech"}  # the new labels, none stale
    assert res.manifest["run_id"] != first.manifest["run_id"]
    _accounted(out, 120)


def test_an_output_inside_its_source_folder_never_reads_itself(ray_local, tmp_path):
    _news(tmp_path, files=2)
    out = tmp_path / "out"
    first = build_sft_data(_cfg(str(tmp_path), out))
    again = build_sft_data(_cfg(str(tmp_path), out, overwrite=True))  # out/ now holds curated/, _work/, ...
    assert first.manifest["counts"]["input"] == again.manifest["counts"]["input"] == 60
    assert [f["path"] for f in again.manifest["inputs"][0]["files"]] == [str(tmp_path / "part0.jsonl"), str(tmp_path / "part1.jsonl")]


def test_a_build_into_a_users_folder_is_refused_before_any_work(ray_local, tmp_path):
    _news(tmp_path / "in", files=1)
    out = tmp_path / "mine"
    (out / "sft").mkdir(parents=True)
    (out / "sft" / "notes.md").write_text("mine")
    with pytest.raises(OutputError, match="not created by sft_ray"):
        build_sft_data(_cfg(str(tmp_path / "in"), out))
    assert (out / "sft" / "notes.md").read_text() == "mine"


def test_a_second_build_is_refused_and_sigterm_stops_the_first(ray_local, tmp_path):
    inputs, out, proc = start_build(ray_local, tmp_path)
    cfg = RunConfig.model_validate({"output": str(out), "dedup": {"num_partitions": 2}, "staging": {"group_small_files": False},
                                    "sources": [{"name": "web", "kind": "web", "format": "jsonl", "path": str(inputs / "*.jsonl"),
                                                 "langs": {"text": "en"}}]})
    clean = out / "_work" / "clean"
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and len(list(clean.glob("*.done")) if clean.exists() else []) < 2:
            time.sleep(0.05)
        assert proc.poll() is None, "the first build ended before the test could race it"
        with pytest.raises(OutputBusy, match=f"pid {proc.pid}"):
            build_sft_data(cfg)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(60) != 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
    time.sleep(3)  # Ray reaps a finished job's workers
    before = sorted(p.name for p in clean.iterdir())
    time.sleep(5)
    assert sorted(p.name for p in clean.iterdir()) == before, "a task of the stopped build kept writing"
    assert len([n for n in before if n.endswith(".done")]) < N_FILES
    res = build_sft_data(cfg)  # right after: the lease is free, the staged units are whole
    assert (out / "_SUCCESS").is_file()
    _accounted(out, res.manifest["counts"]["input"])
    assert res.manifest["counts"]["input"] == N_FILES * 120


def test_fine_tuning_an_empty_training_set_fails_before_ray_train(ray_local, tmp_path):
    from sft_ray.train import run_finetune

    _news(tmp_path / "in", files=1)
    cfg = _cfg(str(tmp_path / "in"), tmp_path / "out", clean={"min_chars": 100_000}, train={"model": "tiny-llama"})
    res = build_sft_data(cfg)
    assert res.manifest["counts"]["kept"] == 0 and res.manifest["sft"]["train"] == 0
    t0 = time.time()
    with pytest.raises(PreflightError, match="sft/train has 0 examples"):
        run_finetune(cfg)
    assert time.time() - t0 < 10 and not (tmp_path / "out" / "train").exists()
