"""The output lease on an object store (moto S3 over real HTTP): conditional PUTs decide who holds it."""

from __future__ import annotations

import json
import time

import pytest
import s3fs

from sft_ray import output


def _fs(ep: str) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(endpoint_url=ep, skip_instance_cache=True)


def test_an_s3_lease_is_exclusive_heartbeats_and_a_dead_one_is_taken_over_once(s3_server):
    ep, b = s3_server["endpoint"], s3_server["bucket"]
    so, out = {"endpoint_url": ep}, f"s3://{b}/runs/leased"
    fs = _fs(ep)
    with output.acquire(out, so, ttl_s=1.5) as first:
        with pytest.raises(output.OutputBusy, match=first.holder["run_id"]):
            output.acquire(out, so)
        beat = json.loads(fs.cat_file(f"{b}/runs/leased/_LEASE"))["heartbeat_at"]
        time.sleep(1.2)  # the holder refreshes every ttl / 3
        assert json.loads(fs.cat_file(f"{b}/runs/leased/_LEASE"))["heartbeat_at"] > beat
        assert not first.lost
    assert not fs.exists(f"{b}/runs/leased/_LEASE")  # released: deleted

    # A dead holder: its last heartbeat is older than its ttl.
    fs.pipe_file(f"{b}/runs/stale/_LEASE", json.dumps({"run_id": "dead", "heartbeat_at": time.time() - 900, "ttl_s": 600}).encode())
    stale_etag = fs.info(f"{b}/runs/stale/_LEASE")["ETag"]
    taker = output.acquire(f"s3://{b}/runs/stale", so)
    try:
        assert json.loads(fs.cat_file(f"{b}/runs/stale/_LEASE"))["run_id"] == taker.holder["run_id"]
        # A second taker that read the same stale lease loses: its PUT is conditional on the old ETag.
        with pytest.raises(OSError):
            fs.pipe_file(f"{b}/runs/stale/_LEASE", b"{}", IfMatch=stale_etag)
        with pytest.raises(output.OutputBusy):
            output.acquire(f"s3://{b}/runs/stale", so)
    finally:
        taker.release()
