"""Build and fine-tune entirely on object storage: an S3 server on loopback (moto, real HTTP).

Sources are read from s3://sft-e2e/raw/... and every output (build layout, Ray Train checkpoints,
final model, eval) goes to s3://sft-e2e/runs/x/. The sources carry only the endpoint in their
storage_options: their credentials come from the environment (set in conftest.py before Ray
starts), so the reads in Ray workers prove the environment reached them. The output carries
explicit (fake) `key`/`secret`, which must never be written anywhere in the run's output.
"""

from __future__ import annotations

import json
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

pytestmark = pytest.mark.slow

OUT_KEY = "e2e-output-key-4f1c9a"
OUT_SECRET = "e2e-output-secret-b7d20e"  # noqa: S105 - fake, for the moto server


@pytest.fixture(scope="module")
def run(s3_server, ray_local):
    """The RunConfig of one S3 run and an s3fs filesystem on the server; the run's output is
    built by the first test and fine-tuned on by the second."""
    import s3fs

    from sft_ray.config import RunConfig

    ep, b = s3_server["endpoint"], s3_server["bucket"]
    src_so = {"endpoint_url": ep}
    cfg = RunConfig.model_validate({
        "output": f"s3://{b}/runs/x",
        "storage_options": {"endpoint_url": ep, "key": OUT_KEY, "secret": OUT_SECRET},
        "sources": [
            {"name": "agnews", "kind": "news", "path": f"s3://{b}/raw/ag/*.csv", "format": "csv",
             "fields": {"label": 0, "title": 1, "text": 2},
             "label_names": {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"},
             "storage_options": src_so},
            {"name": "m30k-en-de", "kind": "translation", "format": "bitext",
             "path": {"src": f"s3://{b}/raw/m30k/train.en.gz", "tgt": f"s3://{b}/raw/m30k/train.de.gz"},
             "langs": {"src": "en", "tgt": "de"}, "storage_options": src_so},
        ],
        "dedup": {"num_partitions": 2},
        "format": {"validation_fraction": 0.1},
        "train": {"model": "tiny-llama", "num_workers": 2, "max_steps": 2, "batch_size": 4, "max_seq_len": 128,
                  "lr": 1e-3, "checkpoint_every": 1, "eval_max_examples": 8, "log_every": 1},
    })
    # A separate client (own credentials, no instance cache) sees what is really on the server.
    fs = s3fs.S3FileSystem(endpoint_url=ep, key="testing", secret="testing", skip_instance_cache=True)
    return {"cfg": cfg, "fs": fs, "root": f"{b}/runs/x", "uploaded": s3_server["counts"], "planted": s3_server["planted"]}


def _rows(fs, prefix: str) -> int:
    files = [p for p in fs.find(prefix) if p.endswith(".parquet")]
    assert files, f"no parquet files under s3://{prefix}"
    rows = [pq.ParquetFile(fs.open(p, "rb")).metadata.num_rows for p in files]
    if sum(rows):  # a placeholder for an empty output only when there is nothing else
        assert all(rows), f"zero-row files next to data under s3://{prefix}: {files}"
    return sum(rows)


def test_build_reads_and_writes_s3(run):
    from sft_ray.build import build_sft_data

    cfg, fs, root = run["cfg"], run["fs"], run["root"]
    t0 = time.time()
    result = build_sft_data(cfg)
    print(f"\n[s3] build in {time.time() - t0:.1f} s", flush=True)
    assert not result.skipped

    fs.invalidate_cache()
    for f in ("_SUCCESS", "manifest.json", "report/report.html"):
        assert fs.isfile(f"{root}/{f}"), f
    assert not fs.exists(f"{root}/_write_probe")
    manifest = json.loads(fs.cat_file(f"{root}/manifest.json"))
    c = manifest["counts"]
    uploaded = run["uploaded"]
    assert c["input"] == sum(uploaded.values())
    assert c["input"] == c["kept"] + c["rejected"]
    for name, n in uploaded.items():
        s = c["by_source"][name]
        assert s["input"] == n and s["input"] == s["kept"] + s["rejected"], (name, s)
        assert s["kept"] > 0, (name, s)
    assert manifest["unreadable_files"] == []
    assert {i for i in json.dumps(manifest["inputs"]).split('"') if i.startswith("s3://")} >= {
        f"s3://{root.split('/')[0]}/raw/ag/part-000.csv", f"s3://{root.split('/')[0]}/raw/ag/part-001.csv"}

    # The files hold what the manifest counts.
    assert _rows(fs, f"{root}/curated") == c["kept"]
    reasons: dict[str, int] = {}
    for per_reason in c["by_stage"].values():
        for reason, n in per_reason.items():
            reasons[reason] = reasons.get(reason, 0) + n
    for reason, n in run["planted"].items():
        assert reasons.get(reason, 0) >= n, (reason, c["by_stage"])
    rejects = pa.concat_tables(pq.read_table(fs.open(p, "rb")) for p in fs.find(f"{root}/rejects") if p.endswith(".parquet"))
    assert rejects.num_rows == c["rejected"] >= sum(run["planted"].values())
    rows = rejects.to_pylist()
    assert any(r["reason"] == "too_short" and r["text"] == "Too short." and r["stage"] for r in rows), rows
    # Duplicates point at a survivor that is in curated/. (Ids are content-derived, so an exact
    # duplicate within one source shares its survivor's id; meta's file/line tell them apart.)
    curated_ids = set(pa.concat_tables(pq.read_table(fs.open(p, "rb"), columns=["id"])
                                       for p in fs.find(f"{root}/curated") if p.endswith(".parquet"))["id"].to_pylist())
    dups = [r for r in rows if r["reason"] == "exact_duplicate"]
    assert dups and all(r["duplicate_of"] in curated_ids for r in dups), dups
    planted = [r for r in dups if r["source"] == "agnews"]
    assert len(planted) >= 3 and all(json.loads(r["meta"])["file"] == "part-001.csv" for r in planted), [(r["id"], r["duplicate_of"], r["meta"]) for r in planted]
    n_train, n_val = _rows(fs, f"{root}/sft/train"), _rows(fs, f"{root}/sft/validation")
    assert (n_train, n_val) == (manifest["sft"]["train"], manifest["sft"]["validation"])
    assert n_train > 0 and n_val > 0

    # Secrets: redacted in the saved config, the endpoint kept; sources kept their options.
    storage_options = manifest["config"]["storage_options"]
    assert storage_options == {"endpoint_url": cfg.storage_options["endpoint_url"], "key": "***", "secret": "***"}
    assert manifest["config"]["sources"][0]["storage_options"] == {"endpoint_url": cfg.storage_options["endpoint_url"]}
    report = fs.cat_file(f"{root}/report/report.html").decode()
    assert OUT_SECRET not in report and OUT_KEY not in report

    # A second run on a complete output is skipped (and reads the manifest back from S3).
    again = build_sft_data(cfg)
    assert again.skipped and again.manifest["counts"] == c


def test_finetune_checkpoints_and_model_on_s3(run):
    try:
        from sft_ray.train import run_finetune
    except ImportError as e:  # pragma: no cover - while train/ is being written
        pytest.fail(f"sft_ray.train.run_finetune is not importable: {e}")

    cfg, fs, root = run["cfg"], run["fs"], run["root"]
    fs.invalidate_cache()
    if not fs.exists(f"{root}/_SUCCESS"):
        pytest.skip("needs the build of test_build_reads_and_writes_s3")
    t0 = time.time()
    summary = run_finetune(cfg)
    print(f"\n[s3] finetune in {time.time() - t0:.1f} s: {summary}", flush=True)
    assert summary["steps"] == 2
    assert summary["model_dir"] == f"s3://{root}/train/model"

    fs.invalidate_cache()
    train = f"{root}/train"
    ckpts = sorted(p.rsplit("/", 1)[-1] for p in fs.ls(f"{train}/checkpoints") if fs.isdir(p))
    assert any(c.startswith("step_") for c in ckpts), ckpts
    last = [c for c in ckpts if c.startswith("step_")][-1]
    assert fs.find(f"{train}/checkpoints/{last}"), f"checkpoint {last} is empty"

    model = f"{train}/model"
    cfg_json = json.loads(fs.cat_file(f"{model}/config.json"))
    assert cfg_json["model_type"] == "llama"
    names = {p.rsplit("/", 1)[-1] for p in fs.find(model)}
    assert any(n.endswith(".safetensors") for n in names), names
    assert "tokenizer_config.json" in names or "tokenizer.json" in names, names
    ev = json.loads(fs.cat_file(f"{train}/eval.json"))
    assert ev, "eval.json is empty"
    assert summary["val_loss_before"] > 0 and summary["val_loss_after"] > 0, summary
    metrics = [json.loads(line) for line in fs.cat_file(f"{train}/metrics.jsonl").decode().splitlines() if line]
    assert [m["step"] for m in metrics][-1] == 2

    # The output credentials were given in the config: nothing written under the run may hold them
    # (manifest, checkpoints' saved config, Ray Train's own state files, metrics, ...).
    leaks = []
    for path, info in fs.find(root, detail=True).items():
        if info["size"] < 4_000_000:
            data = fs.cat_file(path)
            if OUT_SECRET.encode() in data or OUT_KEY.encode() in data:
                leaks.append(path)
    assert not leaks, f"output credentials written in: {leaks}"


def test_build_with_no_rejects(s3_server, ray_local):
    """A corpus in which nothing is rejected still builds on S3, and rejects/ is still there
    (empty, with the rejects schema) so readers of the layout need no special case."""
    import s3fs

    from sft_ray.build import build_sft_data
    from sft_ray.config import RunConfig

    ep, b = s3_server["endpoint"], s3_server["bucket"]
    cfg = RunConfig.model_validate({
        "output": f"s3://{b}/runs/clean", "storage_options": {"endpoint_url": ep},
        "sources": [{"name": "agnews", "kind": "news", "path": f"s3://{b}/raw/clean/", "format": "csv",
                     "fields": {"label": 0, "title": 1, "text": 2}, "storage_options": {"endpoint_url": ep}}],
        "dedup": {"num_partitions": 1}, "format": {"enabled": False},
    })
    result = build_sft_data(cfg)
    assert result.manifest["counts"]["rejected"] == 0
    fs = s3fs.S3FileSystem(endpoint_url=ep, skip_instance_cache=True)
    assert fs.isfile(f"{b}/runs/clean/_SUCCESS")
    files = [p for p in fs.find(f"{b}/runs/clean/rejects") if p.endswith(".parquet")]
    assert files, "rejects/ holds no parquet file when nothing was rejected"
    assert sum(pq.ParquetFile(fs.open(p, "rb")).metadata.num_rows for p in files) == 0
