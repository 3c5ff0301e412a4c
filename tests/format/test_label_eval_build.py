"""The model targets' evaluation inside a build: AG News with half its labels hidden, the label stage on;
manifest.json's `sft.label_eval` scores the topic labeler against the hidden gold and the visible gold,
gives the expected noise of the classification examples, the card says it, and report.html's
"Label targets" section renders in headless Chromium with its plots (format/evaluate.py, report/targets.py)."""

from __future__ import annotations

import base64
import io
import json
import re
import subprocess

import numpy as np
import pyarrow.parquet as pq
import pytest

from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig
from tests.conftest import DEMO_DATA
from tests.report.test_report import _chromium, _section_pages

AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


@pytest.mark.slow
def test_build_scores_model_targets_against_hidden_gold(ray_local, tmp_path):
    from PIL import Image

    out = tmp_path / "out"
    cfg = RunConfig.model_validate({
        "output": str(out),
        "sources": [{"name": "ag", "kind": "news", "format": "csv", "path": str(DEMO_DATA / "ag_news_test_part.csv"),
                     "fields": {"label": 0, "title": 1, "text": 2}, "label_names": AG_LABELS, "limit": 300, "hide_labels": 0.5}],
        "dedup": {"num_partitions": 2},
        "format": {"tasks": {"news": ["classification"]}, "count_tokens": False},
        "label": {"enabled": True, "concurrency": 1, "topic": {"seed": {"max_rows": 200}}},
    })
    m = build_sft_data(cfg).manifest
    ev = m["sft"]["label_eval"]["classification"]
    assert ev["labeler"] == "topic" and ev["threshold"] == 0.5 and ev["kinds"] == ["news"]
    hidden, gold = ev["references"]["hidden"], ev["references"]["gold"]
    curated = pq.read_table(out / "curated").to_pylist()
    n_hidden = sum('"hidden_label"' in (r["meta"] or "") for r in curated)
    assert 100 < n_hidden < 200 and hidden["rows"] + hidden["seed_rows_left_out"] == n_hidden
    assert gold["rows"] + gold["seed_rows_left_out"] == sum(bool(r["label"]) for r in curated)
    for ref in (hidden, gold):
        assert 0.6 < ref["accuracy"] <= 1 and set(ref["per_class"]) == set(AG_LABELS.values())
        assert sum(b["count"] for b in ref["reliability"]["bins"]) == ref["rows"] and 0 <= ref["reliability"]["ece"] < 0.3
        cov = [p["coverage"] for p in ref["curve"]]
        assert cov[0] == 1.0 and cov == sorted(cov, reverse=True)
        at = ref["at_threshold"]
        assert at["threshold"] == 0.5 and at["accuracy"] >= ref["accuracy"] - 0.05 and 0.5 < at["coverage"] <= 1
    # The model targets are exactly the hidden rows at or above the threshold (seed rows included there).
    sources = m["sft"]["label_sources"]["classification"]
    above = sum(1 for r in curated if '"hidden_label"' in (r["meta"] or "") and r["topic_score"] >= 0.5)
    assert sources["model"] == above and sources["gold"] == sum(bool(r["label"]) for r in curated)
    noise = ev["noise"]
    assert noise["reference"] == "hidden" and noise["model_examples"] == sources["model"]
    assert noise["expected_noise_rate"] == pytest.approx((1 - hidden["at_threshold"]["accuracy"]) * noise["model_share"], abs=1e-4)
    assert 0 <= noise["expected_noise_rate"] < 0.3
    # The margin column: top minus second probability, never above the top one.
    assert all(0 <= r["topic_margin"] <= r["topic_score"] for r in curated)
    assert "Expected label noise" in (out / "README.md").read_text()

    report = json.loads((out / "report" / "report.json").read_text())
    assert report["sft"]["label_eval"]["classification"]["noise"] == noise
    page = (out / "report" / "report.html").read_text(encoding="utf-8")
    section = _section_pages(page, tmp_path)["label-targets"]
    flags = _chromium(tmp_path)
    dom = subprocess.run([*flags, "--dump-dom", f"file://{section}"], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0 and [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln] == []
    assert "Expected label noise of the classification examples" in dom.stdout and "gold labels the source withheld" in dom.stdout
    imgs = re.findall(r'src="data:image/png;base64,([^"]+)"', dom.stdout)
    assert len(imgs) == 5  # label sources; reliability + coverage-accuracy for hidden and for gold
    for b64 in imgs:
        Image.open(io.BytesIO(base64.b64decode(b64))).load()
    shot = tmp_path / "targets.png"
    run = subprocess.run([*flags, "--window-size=1000,900", f"--screenshot={shot}", f"file://{section}"], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.exists()
    img = np.asarray(Image.open(shot).convert("L"))
    assert img.std() > 10 and (img < 128).mean() > 0.01
