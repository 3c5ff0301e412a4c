"""The Label Studio round trip against a real server: a Label Studio 1.23.2 server on loopback (its
own virtual environment, .venv-labelstudio/, made by `./dev test`), a project created from
`sft-ray label export`'s config.xml through label-studio-sdk, tasks.json imported, one annotation
per task submitted through the API (the hidden gold label, which for some tasks is not the model's
label), the project exported as JSON, `sft-ray label import` and a rebuild: the human labels are
the classification targets (label_source human) and extend the topic seed (label/human.py).

tests/label/test_label_round_trip.py checks the same flow with a hand-written export; this one
checks that what a real server accepts and writes back is what sft_ray reads.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from sft_ray import cli
from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig
from sft_ray.label.studio import parse_export
from tests.conftest import REPO
from tests.e2e.e2e_support import free_port
from tests.label.test_label_round_trip import hidden_news_run

AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}
LS_VENV = Path(os.environ.get("SFT_RAY_LABEL_STUDIO_VENV") or REPO / ".venv-labelstudio")
ROUNDTRIP = REPO / "tools" / "label_studio_roundtrip.py"  # runs in the Label Studio venv: it has the SDK, not sft_ray
# The first start applies Django's migrations to a fresh SQLite file: 35 s here on a loaded 2-core
# machine; 240 s leaves room for a slower CI runner.
START_TIMEOUT_S = 240


@pytest.fixture
def label_studio(tmp_path):
    """(base url, API token, the venv's python) of a Label Studio server started for this test and
    stopped (its whole process group) after it."""
    if os.environ.get("SFT_RAY_SKIP_LABEL_STUDIO") == "1":
        pytest.skip("SFT_RAY_SKIP_LABEL_STUDIO=1")
    python, server = LS_VENV / "bin" / "python", LS_VENV / "bin" / "label-studio"
    if not (python.exists() and server.exists()):
        pytest.fail(f"no Label Studio at {LS_VENV}: `./dev test` creates it; by hand: python3 -m venv {LS_VENV} && "
                    f"{LS_VENV}/bin/pip install label-studio==1.23.2 (or set SFT_RAY_LABEL_STUDIO_VENV to one, or "
                    "SFT_RAY_SKIP_LABEL_STUDIO=1 to skip this test)")
    port, token = free_port(), secrets.token_hex(20)  # a legacy token is 40 characters
    env = {**os.environ, "LABEL_STUDIO_USERNAME": "sft-ray-test@example.org", "LABEL_STUDIO_PASSWORD": secrets.token_hex(8),
           "LABEL_STUDIO_USER_TOKEN": token, "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true"}
    log = (tmp_path / "label-studio.log").open("wb")
    proc = subprocess.Popen([str(server), "start", "--no-browser", "--internal-host", "127.0.0.1", "-p", str(port),
                             "--data-dir", str(tmp_path / "ls-data")],
                            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.time()
        _wait_ready(base, token, proc, tmp_path / "label-studio.log")
        print(f"Label Studio answered after {time.time() - started:.0f} s")
        yield base, token, python
    finally:
        for sig, grace in ((signal.SIGTERM, 15), (signal.SIGKILL, 5)):
            try:
                os.killpg(proc.pid, sig)
                proc.wait(grace)
                break
            except ProcessLookupError:
                break
            except subprocess.TimeoutExpired:
                continue
        log.close()


def _wait_ready(base: str, token: str, proc: subprocess.Popen, log: Path) -> None:
    """Until the API lists projects for the token's user (the user exists once the server answers)."""
    deadline, last = time.time() + START_TIMEOUT_S, None
    while time.time() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"label-studio exited with {proc.returncode}:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            req = urllib.request.Request(f"{base}/api/projects", headers={"Authorization": f"Token {token}"})
            with urllib.request.urlopen(req, timeout=5) as r:
                if r.status == 200:
                    return
        except (OSError, urllib.error.HTTPError) as e:
            last = e
        time.sleep(1)
    pytest.fail(f"Label Studio not ready after {START_TIMEOUT_S} s ({last}):\n{log.read_text(errors='replace')[-3000:]}")


def _sft(out):
    return [r for split in ("train", "validation") for r in pq.read_table(out / "sft" / split).to_pylist()]


@pytest.mark.slow
def test_label_studio_server_round_trip(ray_local, label_studio, tmp_path):
    base, token, ls_python = label_studio
    cfg, gold, out = hidden_news_run(tmp_path)
    m = build_sft_data(RunConfig.model_validate(cfg)).manifest
    assert "human" not in m["sft"]["label_sources"]["classification"]

    assert cli.main(["label", "export", str(out), "--uncertain", "10", "--audit", "5"]) == 0
    tasks = json.loads((out / "labels" / "studio" / "tasks.json").read_text())
    model_label = {t["data"]["record_id"]: t["data"]["model_label"] for t in tasks}
    answers = {rid: gold[rid] for rid in model_label}  # the annotator answers with the hidden gold label
    overruled = sorted(rid for rid in answers if answers[rid] != model_label[rid])
    assert overruled, "every exported task's model label equals gold: the test would not tell human from model targets"
    (tmp_path / "answers.json").write_text(json.dumps(answers))

    done = subprocess.run([str(ls_python), str(ROUNDTRIP), base, token, str(out), str(tmp_path / "answers.json"), str(tmp_path / "export")],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["tasks"] == summary["predictions"] == summary["annotations"] == len(tasks) == 15

    # JSON-MIN from the same server reads back to the same labels as JSON.
    min_rows, unlabelled = parse_export(json.loads((tmp_path / "export" / "export_json_min.json").read_text()), "topic",
                                        list(AG_LABELS.values()), where="JSON_MIN")
    assert unlabelled == 0 and {r["id"]: r["label"] for r in min_rows} == answers
    assert cli.main(["label", "import", str(out), str(tmp_path / "export" / "export_json.json")]) == 0
    human = [json.loads(line) for line in (out / "labels" / "human.jsonl").read_text().splitlines()]
    assert {h["id"]: h["label"] for h in human} == answers
    assert all(h["annotator"] and h["annotated_at"] and isinstance(h["studio_task"], int) for h in human)

    m2 = build_sft_data(RunConfig.model_validate({**cfg, "overwrite": True})).manifest
    after = {r["source_id"]: r for r in _sft(out) if r["task"] == "classification"}
    for rid, label in answers.items():
        ex = after[rid]
        assert ex["label_source"] == "human" and ex["label_confidence"] is None and ex["messages"][-1]["content"] == label, rid
    assert all(after[rid]["messages"][-1]["content"] != model_label[rid] for rid in overruled)
    assert m2["sft"]["label_sources"]["classification"]["human"] == 15
    # label/human.py: human rows are added to the labeler's seed set before fitting.
    assert m2["label"]["topic"]["human_rows"] == 15 and m2["label"]["topic"]["rows"] == m["label"]["topic"]["rows"] + 15
