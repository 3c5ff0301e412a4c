"""write_sft.py: sft/train, sft/validation, sft/rejects and the SFT figures in one pass, equal to
what the separate scans gave (report/counts.py's sft_counts, format/labels.py's label sources)."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from sft_ray import schema, time_profile
from sft_ray.dedup.sft import removed, survivors
from sft_ray.format.labels import fold_label_sources, label_source_counts_batch
from sft_ray.report.counts import sft_counts
from sft_ray.write_sft import write_examples


def _examples() -> pa.Table:
    rows = []
    for i in range(60):
        rows.append({"id": f"r{i:03d}:qa", "task": "qa" if i % 3 else "classification", "source": "s" if i % 2 else "t",
                     "messages": [{"role": "user", "content": f"question {i} " * (1 + i % 5)}, {"role": "assistant", "content": f"answer {i % 4}"}],
                     "source_id": f"r{i:03d}", "split": "validation" if i % 7 == 0 else "train",
                     "label_source": "gold" if i % 4 else "model", "label_confidence": None if i % 4 else 0.9})
    t = pa.Table.from_pylist(rows, schema=schema.SFT_SCHEMA)
    reasons = [("duplicate_prompt" if i % 11 == 5 else "task_mix" if i % 13 == 6 else None) for i in range(60)]
    dup_of = ["r000:qa" if r == "duplicate_prompt" else None for r in reasons]
    return t.append_column(schema.REJECT_REASON, pa.array(reasons, pa.string())).append_column(schema.DUPLICATE_OF, pa.array(dup_of, pa.string()))


def _ids(folder) -> list[str]:
    return sorted(pq.read_table(folder)[schema.ID].to_pylist())


def test_one_pass_writes_the_three_folders_and_the_same_figures_as_the_separate_scans(ray_local, tmp_path):
    ray = ray_local
    t = _examples()
    tokenizer = (None, "whitespace words")
    with time_profile.recording() as prof:  # a Dataset keeps the context it was made in: make it inside
        ds = ray.data.from_arrow([t.slice(0, 25), t.slice(25, 20), t.slice(45)])
        summary, samples = write_examples(ds, str(tmp_path), {}, tokenizer)
    assert prof.summary({})["executions"] == 1  # was five: counts, label sources, three writes
    assert _ids(tmp_path / "sft" / "train") == sorted(survivors(t, "train")[schema.ID].to_pylist())
    assert _ids(tmp_path / "sft" / "validation") == sorted(survivors(t, "validation")[schema.ID].to_pylist())
    rejects = pq.read_table(tmp_path / "sft" / "rejects")
    assert sorted(rejects.to_pylist(), key=lambda r: r["id"]) == sorted(removed(t).to_pylist(), key=lambda r: r["id"])
    expected, expected_samples = sft_counts(ds, tokenizer)
    expected["label_sources"] = fold_label_sources(label_source_counts_batch(t).to_pylist())
    assert summary == expected and samples == expected_samples
    assert summary["generated"] == 60 == summary["train"] + summary["validation"] + sum(summary["removed"].values())
