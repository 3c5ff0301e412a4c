"""Object-store faults: a loopback proxy (tests/e2e/fault_proxy.py) sits between
the build and a real S3 server (moto, real HTTP) and throttles (503 SlowDown), drops (connection
closed, no response) or delays a share of the build's own requests, reads and writes alike.

(a) Through the faulty store the build completes and its outputs (ids and content of curated/,
    rejects/, sft/; the manifest's counts) equal those of a clean run straight to the server.
(b) A store that is down from the start, or that dies mid-build and stays down, fails the build
    with a message naming the store URL, and no `_SUCCESS` is written (checked on the server
    itself, not through the proxy).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from e2e_support import DEMO_DATA, moto_server
from fault_proxy import FaultProxy
from tests.reliability.outputs import digest

pytestmark = pytest.mark.slow

BUCKET = "sft-faults"
CREDS = {"key": "testing", "secret": "testing", "client_kwargs": {"region_name": "us-east-1"}}
AG_LABELS = {"1": "World", "2": "Sports", "3": "Business", "4": "Sci/Tech"}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A moto S3 server on loopback with 4 small AG News CSV files and a small bitext pair, and a
    fault proxy in front of it. Yields {endpoint (the server), proxy, fs (a client on the server)}."""
    import boto3
    import s3fs

    proxy = None
    with moto_server(tmp_path_factory.mktemp("moto")) as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
        s3.create_bucket(Bucket=BUCKET)
        lines = (DEMO_DATA / "ag_news_test_part.csv").read_text().splitlines(keepends=True)[:160]
        for i in range(4):  # 4 files: 4 read tasks; file 3 repeats 2 rows of file 0 (exact duplicates)
            body = "".join(lines[i::4]) + ("".join(lines[0:8:4]) if i == 3 else "")
            s3.put_object(Bucket=BUCKET, Key=f"raw/ag/part-{i:03d}.csv", Body=body.encode())
        import gzip
        for lang in ("en", "de"):
            with gzip.open(DEMO_DATA / f"multi30k_train_3k.{lang}.gz", "rt", encoding="utf-8") as f:
                text = "".join(next(f) for _ in range(60))
            s3.put_object(Bucket=BUCKET, Key=f"raw/m30k/train.{lang}.gz", Body=gzip.compress(text.encode(), mtime=0))
        proxy = FaultProxy(endpoint).start()
        fs = s3fs.S3FileSystem(endpoint_url=endpoint, skip_instance_cache=True, **CREDS)
        try:
            yield {"endpoint": endpoint, "proxy": proxy, "fs": fs}
        finally:
            proxy.stop()


def _config(endpoint: str, run: str, max_attempts: int | None = None):
    from sft_ray.config import RunConfig

    storage_options = {"endpoint_url": endpoint, **CREDS}
    if max_attempts:  # a user's own botocore retry setting (wins over sft_ray.storage.S3_RETRIES)
        storage_options["config_kwargs"] = {"retries": {"mode": "standard", "total_max_attempts": max_attempts}}
    return RunConfig.model_validate({
        "output": f"s3://{BUCKET}/runs/{run}", "storage_options": storage_options, "read_batch_size": 20,
        "sources": [
            {"name": "ag", "kind": "news", "path": f"s3://{BUCKET}/raw/ag/*.csv", "format": "csv",
             "fields": {"label": 0, "title": 1, "text": 2}, "label_names": AG_LABELS, "storage_options": storage_options},
            {"name": "m30k", "kind": "translation", "format": "bitext",
             "path": {"src": f"s3://{BUCKET}/raw/m30k/train.en.gz", "tgt": f"s3://{BUCKET}/raw/m30k/train.de.gz"},
             "langs": {"src": "en", "tgt": "de"}, "storage_options": storage_options},
        ],
        "dedup": {"num_partitions": 2},
        "format": {"validation_fraction": 0.2},
    })


def _download(fs, run: str, dest: Path) -> tuple[dict, dict]:
    """(content digest of the outputs, manifest) of a run, read from the server itself."""
    fs.invalidate_cache()
    root = f"{BUCKET}/runs/{run}"
    fs.get(root + "/", str(dest), recursive=True)
    manifest = json.loads((dest / "manifest.json").read_text())
    return digest(dest), manifest


def test_build_through_faulty_store_equals_clean_run(store, ray_local, tmp_path):
    from sft_ray.build import build_sft_data

    proxy, fs = store["proxy"], store["fs"]
    t0 = time.time()
    build_sft_data(_config(store["endpoint"], "clean"))
    t_clean = time.time() - t0
    clean, clean_manifest = _download(fs, "clean", tmp_path / "clean")

    proxy.enabled, proxy.down = True, False
    before = {k: proxy.injected(k) for k in ("read", "write")}
    t0 = time.time()
    res = build_sft_data(_config(proxy.endpoint, "faulted"))
    t_faulted = time.time() - t0
    after = {k: proxy.injected(k) for k in ("read", "write")}
    print(f"\n[store faults] clean build {t_clean:.1f} s, through the faulty store {t_faulted:.1f} s; "
          f"faults before {before}, after {after}; all requests {dict(proxy.counts)}", flush=True)
    assert not res.skipped
    for kind in ("read", "write"):
        for fault in ("slowdown", "drop", "delay"):
            assert after[kind].get(fault, 0) > before[kind].get(fault, 0), (kind, fault, after)

    assert fs.isfile(f"{BUCKET}/runs/faulted/_SUCCESS")
    faulted, faulted_manifest = _download(fs, "faulted", tmp_path / "faulted")
    assert faulted_manifest["unreadable_files"] == [] == clean_manifest["unreadable_files"]
    assert faulted_manifest["counts"] == clean_manifest["counts"]
    assert faulted_manifest["sft"] == clean_manifest["sft"]
    assert faulted == clean


def test_store_that_stays_down_fails_clearly_and_leaves_no_success(store, ray_local):
    from sft_ray.build import build_sft_data

    proxy, fs = store["proxy"], store["fs"]
    proxy.down = True
    t0 = time.time()
    try:
        with pytest.raises(Exception) as err:
            build_sft_data(_config(proxy.endpoint, "down"))
    finally:
        proxy.down = False
    msg = str(err.value)
    print(f"\n[store down] failed after {time.time() - t0:.1f} s: {type(err.value).__name__}: {msg[:500]}", flush=True)
    assert f"s3://{BUCKET}/runs/down" in msg, msg
    assert "failed after retries" in msg and ("Service Unavailable" in msg or "reduce your request rate" in msg), msg
    fs.invalidate_cache()
    assert not fs.exists(f"{BUCKET}/runs/down/_SUCCESS")


def test_store_dying_mid_build_fails_and_leaves_no_success(store, ray_local):
    from sft_ray.build import build_sft_data

    proxy, fs = store["proxy"], store["fs"]
    proxy.enabled, proxy.down = False, False
    # The probe, the output's lease and ownership marker, the fingerprint and a few staged files get through.
    proxy.down_after_writes = proxy._seq["write"] + 8
    t0 = time.time()
    try:
        with pytest.raises(Exception) as err:
            # 2 attempts per call (the user's setting) instead of our 5: the same failure, sooner.
            build_sft_data(_config(proxy.endpoint, "dies", max_attempts=2))
    finally:
        proxy.down, proxy.down_after_writes, proxy.enabled = False, None, True
    msg = str(err.value)
    print(f"\n[store dies] failed after {time.time() - t0:.1f} s: {type(err.value).__name__}: {msg[-1500:]}", flush=True)
    # The failure happens inside a Ray task (staging a file, or listing/reading inputs): the
    # message is botocore's or ours, and says the store kept refusing after its retries.
    assert "max retries" in msg or "failed after retries" in msg, msg
    assert any(s in msg for s in ("SlowDown", "reduce your request rate", "Service Unavailable")), msg
    fs.invalidate_cache()
    assert fs.exists(f"{BUCKET}/runs/dies/_work"), "the store died before the build wrote anything"
    assert not fs.exists(f"{BUCKET}/runs/dies/_SUCCESS")


def test_pinned_retries_hold_for_plain_fsspec_reads_in_a_hostile_environment(store, monkeypatch):
    """The readers open inputs with plain `fsspec.open(url, **storage_options)`, not through
    sft_ray.storage; a node whose environment says `AWS_MAX_ATTEMPTS=1` would leave them one
    attempt, and every failed read would become an `unreadable_file` reject. The retry config that
    sft_ray.storage pins (as fsspec's default for s3) keeps them retrying; without it they fail."""
    import fsspec

    import sft_ray.storage  # noqa: F401 - importing it sets fsspec's s3 default

    proxy = store["proxy"]
    proxy.enabled, proxy.down = True, False
    monkeypatch.setenv("AWS_RETRY_MODE", "standard")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    storage_options = {"endpoint_url": proxy.endpoint, "skip_instance_cache": True, **CREDS}

    def failed_reads() -> int:
        fs = fsspec.filesystem("s3", **storage_options)  # as fsspec.open makes it: fsspec's config applied
        n = 0
        for i in range(40):
            try:
                with fs.open(f"{BUCKET}/raw/ag/part-{i % 4:03d}.csv", "rb") as f:
                    f.read()
            except Exception:  # noqa: BLE001 - counted
                n += 1
        return n

    before = proxy.injected("read")
    assert failed_reads() == 0
    pinned = fsspec.config.conf["s3"]
    monkeypatch.delitem(fsspec.config.conf, "s3")
    unpinned_failures = failed_reads()
    monkeypatch.setitem(fsspec.config.conf, "s3", pinned)
    after = proxy.injected("read")
    print(f"\n[hostile env] without the pin {unpinned_failures}/40 reads failed; faults {before} -> {after}", flush=True)
    assert unpinned_failures > 0
