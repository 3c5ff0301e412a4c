"""`hide_labels`: a hash-chosen share of a labelled source's gold labels is withheld (kept in
meta.hidden_label), the same records whatever the file split, so model labels take their place."""

from __future__ import annotations

import json

from sft_ray.config import SourceConfig
from sft_ray.ingest.formats import Raw
from sft_ray.ingest.records import field_mapping, to_record


def _records(share: float) -> list[dict]:
    src = SourceConfig(name="ag", kind="news", path="x.csv", format="csv", fields={"label": 0, "title": 1, "text": 2},
                       label_names={"1": "World", "2": "Sports"}, hide_labels=share)
    rows = [Raw(i + 1, {"0": "1" if i % 2 else "2", "1": f"Title {i}", "2": f"Story number {i} about things."}) for i in range(400)]
    return [to_record(src, field_mapping(src), r, "x.csv") for r in rows]


def test_hidden_share_and_gold_kept_in_meta():
    shown, hidden = _records(0.0), _records(0.25)
    assert all(r["label"] for r in shown)
    gone = [r for r in hidden if not r.get("label")]
    assert 70 <= len(gone) <= 130  # ~25% of 400
    for r, s in zip(hidden, shown):
        assert r["id"] == s["id"]  # ids do not depend on hiding
        if not r.get("label"):
            assert json.loads(r["meta"])["hidden_label"] == s["label"]
    assert [r["id"] for r in gone] == [r["id"] for r in _records(0.25) if not r.get("label")]  # deterministic
