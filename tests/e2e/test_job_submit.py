"""`ray job submit` against a real Ray head with token authentication (docs/ARCHITECTURE.md, "Data flow").

Every job must work unchanged under
    ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml -- python jobs/<job>.py ...
The head is started by the `ray_head` fixture (tests/e2e/conftest.py) from the venv, so `python`
inside the job is the venv's python; the checkout itself travels as the working dir.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from e2e_support import DEMO_DATA, REPO, VENV_BIN, head_env

pytestmark = pytest.mark.slow

RAY = str(VENV_BIN / "ray")
JOB_PREFIX = ["--working-dir", ".", "--runtime-env", "cluster/runtime_env.yaml"]


def submit(head: dict, args: list[str], env: dict, *, wait: bool = False, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [RAY, "job", "submit", "--address", head["address"], *JOB_PREFIX]
    if not wait:
        cmd.append("--no-wait")
    cmd += ["--", *args]
    # On a loaded machine the node's job agent can come up after the job server answers: the server
    # then says "No available agent to submit job, please try again later". Do as it says.
    for _ in range(30):
        r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        if "No available agent to submit job" not in r.stdout + r.stderr:
            return r
        time.sleep(2)
    return r


def job_id(out: str) -> str:
    m = re.search(r"Job '([^']+)' submitted successfully", out)
    assert m, f"no job id in:\n{out}"
    return m.group(1)


def client(head: dict):
    """Job SDK client for polling status and logs, with our token as an explicit header (so this
    process's own token files or env play no part)."""
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(head["address"], headers={"Authorization": f"Bearer {head['token']}"})


def wait_job(head: dict, jid: str, timeout: float) -> str:
    """Poll the job until it is terminal; returns SUCCEEDED / FAILED / STOPPED."""
    c = client(head)
    deadline = time.time() + timeout
    status = None
    while time.time() < deadline:
        status = c.get_job_status(jid)
        if status.is_terminal():
            return status.value
        time.sleep(1)
    raise TimeoutError(f"job {jid} still {status} after {timeout} s")


def job_logs(head: dict, jid: str) -> str:
    return client(head).get_job_logs(jid)


def _auth_line(out: str) -> str:
    lines = [ln.strip() for ln in out.splitlines() if re.search(r"(?i)authenticat|unauthori|forbidden|40[13]", ln)]
    return lines[-1][:200] if lines else "?"


def test_submit_without_token_is_refused(ray_head, tmp_path):
    """No RAY_AUTH_TOKEN, no RAY_AUTH_TOKEN_PATH and a HOME without ~/.ray/auth_token: refused.
    A wrong token is refused too."""
    args = ["python", "jobs/pipeline.py", "--config", "jobs/configs/tiny.yaml", "--set", f"output={tmp_path / 'out'}"]
    home = tmp_path / "home"
    home.mkdir()
    r = submit(ray_head, args, head_env(None, home=home))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert re.search(r"(?i)authenticat|unauthori[sz]ed|401", out), out
    assert "submitted successfully" not in out
    print(f"\n[job submit] no token -> exit {r.returncode}: {_auth_line(out)}", flush=True)

    # A client that does not even know the cluster uses tokens sends no header: the server says 401.
    r = submit(ray_head, args, head_env(None, home=home, auth_mode=None))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert re.search(r"(?i)authenticat|unauthori[sz]ed|401", out), out
    assert "submitted successfully" not in out
    print(f"[job submit] no token, no auth mode -> exit {r.returncode}: {_auth_line(out)}", flush=True)
    for headers, code in (({}, 401), ({"Authorization": "Bearer " + "0" * 64}, 403)):
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(urllib.request.Request(ray_head["address"] + "/api/jobs/", headers=headers), timeout=30)
        assert e.value.code == code

    r = submit(ray_head, args, head_env("0" * 64, home=home))
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert re.search(r"(?i)authenticat|forbidden|invalid.*token|403", out), out
    assert "submitted successfully" not in out
    print(f"[job submit] wrong token -> exit {r.returncode}: {_auth_line(out)}", flush=True)
    assert not (tmp_path / "out").exists()


def test_unknown_config_key_fails_the_job_naming_the_key(ray_head, tmp_path):
    cfg = yaml.safe_load((REPO / "jobs" / "configs" / "tiny.yaml").read_text())
    cfg["sources"][0]["path"] = str(DEMO_DATA / "ag_news_test_part.csv")
    cfg["sources"][1]["path"] = {k: str(DEMO_DATA / f"multi30k_train_3k.{k.replace('src', 'en').replace('tgt', 'de')}.gz")
                                 for k in ("src", "tgt")}
    cfg["dedup"]["num_partitionz"] = 3  # the typo
    cfg["output"] = str(tmp_path / "out")
    path = tmp_path / "typo.yaml"
    path.write_text(yaml.safe_dump(cfg))

    r = submit(ray_head, ["python", "jobs/pipeline.py", "--config", str(path)], head_env(ray_head["token"]))
    assert r.returncode == 0, r.stdout + r.stderr
    jid = job_id(r.stdout + r.stderr)
    assert wait_job(ray_head, jid, 180) == "FAILED"
    logs = job_logs(ray_head, jid)
    assert "dedup.num_partitionz" in logs, logs
    assert "unknown key" in logs, logs
    assert not (tmp_path / "out").exists()


def test_pipeline_job_succeeds_and_writes_the_layout(ray_head, tmp_path):
    out = tmp_path / "out"
    t0 = time.time()
    r = submit(ray_head, ["python", "jobs/pipeline.py", "--config", "jobs/configs/tiny.yaml",
                          "--set", f"output={out}", "--set", "train.max_steps=2"],
               head_env(ray_head["token"]), wait=True, timeout=420)
    log = r.stdout + r.stderr
    print(f"\n[job submit] pipeline job finished in {time.time() - t0:.1f} s", flush=True)
    for line in log.splitlines():
        if re.search(r"finished in [0-9.]+ s$|^== |wall [0-9.]+ s|^records: |^sft examples: ", line):
            print(f"[job submit]   {line.strip()}", flush=True)
    assert r.returncode == 0, log[-6000:]
    jid = job_id(log)
    assert wait_job(ray_head, jid, 30) == "SUCCEEDED"
    assert "run finished" in log

    # Build layout
    assert (out / "_SUCCESS").is_file()
    manifest = json.loads((out / "manifest.json").read_text())
    c = manifest["counts"]
    assert c["input"] == c["kept"] + c["rejected"] > 0
    assert manifest["sft"]["train"] > 0
    assert list((out / "sft" / "train").glob("*.parquet"))
    assert list((out / "sft" / "validation").glob("*.parquet"))
    assert list((out / "curated").glob("*.parquet"))
    assert (out / "report" / "report.html").is_file()
    # Training layout
    model = out / "train" / "model"
    assert json.loads((model / "config.json").read_text())["model_type"] == "llama"
    assert list(model.glob("*.safetensors"))
    ev = json.loads((out / "train" / "eval.json").read_text())
    assert ev, "eval.json is empty"
    assert (out / "train" / "metrics.jsonl").read_text().strip()
    steps = sorted(p.name for p in (out / "train" / "checkpoints").glob("step_*") if p.is_dir())
    assert steps, "no checkpoint under train/checkpoints"

    # The working dir upload honoured runtime_env.yaml's excludes: the unpacked package on the
    # node holds the checkout's code, not .venv/ or .git/ (hundreds of MB), and is small.
    pkgs = {p.resolve() for p in Path(ray_head["temp_dir"]).glob("session_2*/runtime_resources/working_dir_files/*") if p.is_dir()}
    assert pkgs, "no working dir package found on the node"
    for pkg in pkgs:
        names = {p.name for p in pkg.iterdir()}
        assert {"jobs", "sft_ray", "cluster"} <= names, names
        assert not names & {".venv", ".git", "runs"}, names
        size = sum(p.stat().st_size for p in pkg.rglob("*") if p.is_file())
        print(f"[job submit] working dir package {pkg.name}: {size / 1e6:.2f} MB", flush=True)
        assert size < 20e6, f"working dir upload is {size / 1e6:.1f} MB: excludes not applied?"

    # Secrets: the Ray token and the node's cloud keys appear in no output file (manifest,
    # report, checkpoints with their saved config, model, metrics), in the job's logs, or in any
    # log file of the Ray session.
    logs = job_logs(ray_head, jid)
    files = [p for p in out.rglob("*") if p.is_file()]
    files += [p for p in Path(ray_head["temp_dir"]).glob("session_2*/logs/**/*") if p.is_file()]
    assert len(files) > 20
    leaks = [str(p) for p in files if any(s.encode() in p.read_bytes() for s in ray_head["secrets"])]
    leaks += ["job logs"] if any(s in logs or s in log for s in ray_head["secrets"]) else []
    assert not leaks, f"secrets found in: {leaks}"

