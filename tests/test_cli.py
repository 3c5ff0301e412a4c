"""The CLI a newcomer meets: errors before Ray starts, help with examples, --version, did-you-mean,
validate-config --explain."""

from __future__ import annotations

import subprocess
import sys
import time

from sft_ray.cli import main
from tests.conftest import REPO


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "PYTHONPATH": str(REPO)}  # no RAY_ADDRESS: it would start Ray
    return subprocess.run([sys.executable, "-m", "sft_ray.cli", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)


def test_a_missing_input_or_unknown_model_fails_in_seconds_leaving_nothing(tmp_path):
    out = tmp_path / "out"
    bad_path = tmp_path / "bad.yaml"
    bad_path.write_text(f"output: {out}\nsources: [{{name: a, kind: text, format: jsonl, path: {tmp_path}/nope/*.jsonl}}]\n")
    t0 = time.time()
    r = _cli("build", "--config", str(bad_path))
    assert r.returncode == 2 and f"{tmp_path}/nope/*.jsonl matches no files" in r.stderr
    (tmp_path / "a.jsonl").write_text('{"text": "hello there"}\n')
    bad_model = tmp_path / "model.yaml"
    bad_model.write_text(f"output: {out}\nsources: [{{name: a, kind: text, format: jsonl, path: {tmp_path}/a.jsonl}}]\n"
                         f"train: {{model: {tmp_path}/no-such-model}}\n")
    r2 = _cli("run", "--config", str(bad_model))
    assert r2.returncode == 2 and "train.model" in r2.stderr and "no-such-model" in r2.stderr
    assert time.time() - t0 < 60 and not out.exists()  # no Ray start-up (17-28 s each), no output folder
    assert "Started a local Ray instance" not in r.stdout + r.stderr + r2.stdout + r2.stderr


def test_help_version_and_did_you_mean(tmp_path, capsys):
    r = _cli("build", "--help")
    assert r.returncode == 0 and "examples:" in r.stdout and "--config jobs/configs/tiny.yaml" in r.stdout
    v = _cli("--version")
    assert v.returncode == 0 and v.stdout.startswith("sft-ray ")
    typo = tmp_path / "typo.yaml"
    typo.write_text("output: x\nsources: []\ndedup: {num_partitionz: 3}\n")
    assert main(["validate-config", str(typo)]) == 2
    err = capsys.readouterr().err
    assert "unknown key 'dedup.num_partitionz'" in err and "did you mean 'num_partitions'" in err
    assert main(["validate-config", str(REPO / "jobs" / "configs" / "tiny.yaml"), "--explain"]) == 0
    explained = capsys.readouterr().out
    assert "clean.min_chars = " in explained and "Documents shorter than this" in explained
