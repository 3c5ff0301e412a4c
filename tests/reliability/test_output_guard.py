"""The output is owned and leased; a finished build knows what it was built from (no Ray here).

Each test names the promise it checks (README, "Guarantees").
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from sft_ray import output, rebuild
from sft_ray.config import ConfigError, RunConfig, config_dict, redact, require_output
from sft_ray.ingest import describe_inputs, list_inputs
from sft_ray.ingest.files import expand


# --------------------------------------------------------------------------------------- lease
def test_a_second_lease_on_one_output_is_refused_naming_the_holder(tmp_path):
    with output.acquire(str(tmp_path), {}) as first:
        with pytest.raises(output.OutputBusy, match=f"pid {os.getpid()}") as e:
            output.acquire(str(tmp_path), {})
        assert first.holder["run_id"] in str(e.value)
    output.acquire(str(tmp_path), {}).release()  # released: free again


def test_a_dead_holders_lease_is_taken_over(tmp_path):
    # A process takes the lease, reports it, and is SIGKILLed: the kernel frees its flock.
    code = ("import sys, time; from sft_ray import output; output.acquire(sys.argv[1], {}); "
            "print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True,
                            cwd=Path(__file__).resolve().parents[2])
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(output.OutputBusy, match=f"pid {proc.pid}"):
            output.acquire(str(tmp_path), {})
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        output.acquire(str(tmp_path), {}).release()
    finally:
        if proc.poll() is None:
            proc.kill()


# ----------------------------------------------------------------------------------- ownership
def test_a_non_empty_folder_we_did_not_create_is_refused_and_left_alone(tmp_path):
    (tmp_path / "report").mkdir()
    (tmp_path / "report" / "q3.txt").write_text("a user's report")
    (tmp_path / "manifest.json").write_text("{}")
    with pytest.raises(output.NotOwned, match="not created by sft_ray"):
        output.claim(str(tmp_path), {})
    assert (tmp_path / "report" / "q3.txt").read_text() == "a user's report"
    assert not (tmp_path / output.OWNER).exists()


def test_a_new_or_empty_folder_is_claimed_and_an_old_build_is_recognised(tmp_path):
    output.claim(str(tmp_path / "new"), {})
    assert json.loads((tmp_path / "new" / output.OWNER).read_text())["tool"] == "sft_ray"
    old = tmp_path / "old"  # built by an sft_ray from before the marker
    old.mkdir()
    (old / "manifest.json").write_text(json.dumps({"kind": "build"}))
    (old / "curated").mkdir()
    output.claim(str(old), {})
    assert (old / output.OWNER).is_file()


# ------------------------------------------------------------------------- what a build is of
def _cfg(src: Path, out: Path, **extra) -> RunConfig:
    return RunConfig.model_validate({"output": str(out), "sources": [
        {"name": "a", "kind": "text", "format": "jsonl", "path": str(src), "langs": {"text": "en"}}], **extra})


def test_a_same_size_edit_changes_the_files_version(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"text": "label one"}\n')
    before = expand(str(p), {})[0]
    time.sleep(0.01)
    p.write_text('{"text": "label two"}\n')  # same size, new content
    after = expand(str(p), {})[0]
    assert before.size == after.size and before.version != after.version


def test_changes_name_the_config_keys_and_the_files(tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    (src / "a.jsonl").write_text('{"text": "one"}\n')
    cfg = _cfg(src, tmp_path / "out")
    described = describe_inputs(list_inputs(cfg))
    manifest = {"config": config_dict(cfg), "inputs": described, "fingerprint": rebuild.fingerprint(cfg, described)}
    assert rebuild.changes(manifest, cfg, described) == []
    (src / "b.jsonl").write_text('{"text": "two"}\n')
    with open(src / "a.jsonl", "a") as f:
        f.write('{"text": "appended"}\n')
    edited = _cfg(src, tmp_path / "out", clean={"min_chars": 200}, train={"max_steps": 3})  # train: not part of a build
    what = rebuild.changes(manifest, edited, describe_inputs(list_inputs(edited)))
    assert what == ["config changed: clean.min_chars (20 -> 200)",
                    f"inputs changed: 1 file(s) added (e.g. {src / 'b.jsonl'}); 1 file(s) changed (e.g. {src / 'a.jsonl'})"]
    assert rebuild.changes({"config": {}}, cfg, described)[0].startswith("config changed")  # no fingerprint: never "complete"


def test_the_output_is_never_listed_as_input(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "one"}\n')
    (tmp_path / "out" / "curated").mkdir(parents=True)
    (tmp_path / "out" / "curated" / "x.jsonl").write_text('{"text": "built"}\n')
    (tmp_path / "out" / "_work").mkdir()
    cfg = _cfg(tmp_path, tmp_path / "out")
    assert [it["rel"] for it in list_inputs(cfg)["a"]] == ["a.jsonl"]


# ------------------------------------------------------------------------------------ config
def test_a_config_file_must_name_its_output_and_a_build_its_sources(tmp_path):
    from sft_ray.cli import main

    cfg = RunConfig.model_validate({"sources": []})
    with pytest.raises(ConfigError, match="'output' in c.yaml: required"):
        require_output(cfg, "c.yaml")
    (tmp_path / "empty.yaml").write_text("")
    t0 = time.time()
    assert main(["build", "--config", str(tmp_path / "empty.yaml")]) == 2  # no output
    (tmp_path / "nosrc.yaml").write_text(f"output: {tmp_path / 'out'}\n")
    assert main(["build", "--config", str(tmp_path / "nosrc.yaml")]) == 2  # no sources
    assert time.time() - t0 < 10 and not (tmp_path / "out").exists()  # before Ray starts (tests/test_cli.py); nothing written


def test_redaction_is_by_value_so_the_saved_config_runs_again(monkeypatch):
    monkeypatch.setenv("MY_SERVICE_TOKEN", "tok-0123456789")
    cfg = RunConfig.model_validate({"output": "s3://b/run-tok-0123456789", "storage_options": {"secret": "s3cr3t"},
                                    "dedup": {"exact": {"pair_key": "source"}},
                                    "sources": [{"name": "a", "kind": "text", "format": "jsonl", "path": "s3://b/x.jsonl"}]})
    saved = config_dict(cfg)
    assert saved["dedup"]["exact"]["pair_key"] == "source"  # looks like a credential's name, is not one
    assert saved["storage_options"]["secret"] == "***" and saved["output"] == "s3://b/run-***"
    RunConfig.model_validate(saved)  # the manifest's config validates again
    red = redact({"storage_options": {"client_kwargs": {"aws_secret_access_key": "k2"}}, "a": "k2", "b": "bk2b"})
    assert (red["a"], red["b"]) == ("***", "bk2b")  # a short secret: replaced where it is the whole value only
