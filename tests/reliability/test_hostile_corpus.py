"""A hostile corpus, generated here: the build completes, every input record is accounted for per
source (input = kept + rejected), and every unreadable file is named in the manifest and report."""

from __future__ import annotations

import gzip
import json
import os

import pyarrow.parquet as pq
import pytest

from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig

GOOD = "A sentence that is long enough to be kept by the length filter."


@pytest.fixture(scope="module")
def hostile(ray_local, tmp_path_factory):
    d = tmp_path_factory.mktemp("hostile")
    (d / "docs").mkdir()
    lines = [json.dumps({"id": "a1", "text": GOOD}), '{"id": "a2", "text": ', json.dumps({"id": "a3", "text": ["not", "text"]}),
             json.dumps({"id": "a4"}), json.dumps({"id": "a5", "text": GOOD + " five"})]
    (d / "docs" / "a.jsonl").write_text("\n".join(lines) + "\n")
    (d / "docs" / "b.jsonl").write_bytes(b'{"id": "b1", "text": "' + GOOD.encode() + b'"}\n{"id": "b2", "text": "\xff\xfe\xfd"}\n')
    (d / "docs" / "c.jsonl").write_text(json.dumps({"id": "a1", "text": GOOD}) + "\n")  # duplicate id across files
    (d / "docs" / "empty.jsonl").write_bytes(b"")
    (d / "docs" / "binary.jsonl").write_bytes(os.urandom(4096).replace(b"\n", b"\x00") + b"\n" + os.urandom(1024).replace(b"\n", b"\x00"))
    big = json.dumps({"id": "big", "text": ("word " * 2_000_000)})  # ~10 MB on one line
    (d / "docs" / "big.jsonl").write_text(big + "\n")
    full = gzip.compress("".join(json.dumps({"id": f"g{i}", "text": f"{GOOD} {i}"}) + "\n" for i in range(3000)).encode())
    (d / "docs" / "cut.jsonl.gz").write_bytes(full[: len(full) // 2])
    (d / "news.csv").write_text('"1","Title one","A description that is long enough to keep."\n"2","only two columns"\n"3","T3","Another description that is long enough."\n')
    (d / "en.txt").write_text("One.\nTwo dogs.\nThree cats.\n")
    (d / "de.txt").write_text("Eins.\nZwei Hunde.\n")
    cfg = RunConfig.model_validate(
        {
            "output": str(d / "out"),
            "dedup": {"num_partitions": 2},
            "clean": {"max_chars": 50_000},
            "sources": [
                {"name": "docs", "kind": "text", "format": "jsonl", "path": str(d / "docs")},
                {"name": "news", "kind": "news", "format": "csv", "path": str(d / "news.csv"), "fields": {"label": 0, "title": 1, "text": 2}},
                {"name": "pairs", "kind": "translation", "format": "bitext", "langs": {"src": "en", "tgt": "de"},
                 "path": {"src": str(d / "en.txt"), "tgt": str(d / "de.txt")}},
            ],
        }
    )
    return d, build_sft_data(cfg)


def test_build_completes_and_counts_are_conserved(hostile):
    d, res = hostile
    c = res.manifest["counts"]
    assert (d / "out" / "_SUCCESS").exists()
    for name, v in c["by_source"].items():
        assert v["input"] == v["kept"] + v["rejected"], name
    kept = pq.read_table(d / "out" / "curated").num_rows
    rejected = pq.read_table(d / "out" / "rejects").num_rows
    assert kept == c["kept"] and rejected == c["rejected"] and kept + rejected == c["input"]


def test_every_bad_record_has_a_named_reason(hostile):
    d, res = hostile
    rejects = pq.read_table(d / "out" / "rejects").to_pylist()
    by_id = {}
    for r in rejects:
        by_id.setdefault(r["reason"], []).append(r)
    ingest = res.manifest["counts"]["by_stage"]["ingest"]
    assert ingest["malformed_json"] >= 1 and ingest["wrong_type"] == 1 and ingest["missing_field"] == 1
    assert ingest["invalid_utf8"] >= 2  # the bad line in b.jsonl and the binary file's lines
    assert ingest["wrong_column_count"] == 1 and ingest["misaligned_bitext"] == 1
    assert res.manifest["counts"]["by_stage"]["clean"]["too_long"] == 1  # the 10 MB line
    assert any(r["duplicate_of"] == "docs-a1" for r in by_id["exact_duplicate"])  # same id, other file


def test_unreadable_file_is_named_in_manifest_and_report(hostile):
    d, res = hostile
    files = res.manifest["unreadable_files"]
    assert [f["file"] for f in files] == ["cut.jsonl.gz"] and files[0]["error"]
    assert "cut.jsonl.gz" in (d / "out" / "report" / "report.html").read_text()
    # the records before the truncation point were read and passed on, not thrown away with the file
    # (their near-identical texts may then be deduplicated or decontaminated: that is not the point here)
    rejects = pq.read_table(d / "out" / "rejects").to_pylist()
    cut_ids = {r["id"] for r in rejects if r["stage"] != "ingest"} | set(pq.read_table(d / "out" / "curated")["id"].to_pylist())
    assert sum(i.startswith("docs-g") for i in cut_ids) > 100
