"""End-to-end fixtures: an S3 server on loopback (moto, real HTTP) and a real `ray start --head` cluster.

Nothing is mocked: sft_ray talks to the S3 server through s3fs/botocore over HTTP, and jobs go
through `ray job submit` to a separately started Ray head with token authentication.
"""

from __future__ import annotations

import csv
import gzip
import io
import os
import secrets
import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from e2e_support import DEMO_DATA, free_port, kill_mentioning, moto_server, start_ray_node, stop_ray_node, wait_http

# Fake credentials for the S3 server. They go into os.environ *at import* (collection time), i.e.
# before any fixture runs and therefore before the session-wide in-process Ray (`ray_local`) is
# started, whichever test starts it: Ray worker processes inherit the driver's environment, and
# the sources' storage_options below deliberately carry no credentials, so the workers' reads
# prove that the environment reached them.
FAKE_AWS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
os.environ.update(FAKE_AWS)
for _v in ("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_PROFILE"):
    os.environ.pop(_v, None)

BUCKET = "sft-e2e"


# ------------------------------------------------------------------------------------------- S3
def _csv_rows(path: Path, start: int, n: int) -> bytes:
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for i, r in enumerate(csv.reader(f)) if start <= i < start + n]
    buf = io.StringIO()
    csv.writer(buf, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return buf.getvalue().encode()


def _gz_lines(path: Path, n: int) -> bytes:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(n)]
    return gzip.compress("".join(lines).encode(), mtime=0)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory):
    """A moto S3 server (subprocess, real HTTP) on 127.0.0.1 holding trimmed copies of the demo corpora.

    Yields {endpoint, bucket, counts, planted}: counts are the records uploaded per source,
    planted the rejects planted in them (reason -> at least this many).
    """
    import boto3

    with moto_server(tmp_path_factory.mktemp("moto")) as endpoint:
        s3 = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        ag, n_ag = DEMO_DATA / "ag_news_test_part.csv", 60
        # Two AG News files (a glob on S3). The second one repeats 3 records of the first (exact
        # duplicates across files) and holds one record too short to keep: rejects/ is not empty.
        short = b'"1","Short","Too short."\n'
        s3.put_object(Bucket=BUCKET, Key="raw/ag/part-000.csv", Body=_csv_rows(ag, 0, n_ag))
        s3.put_object(Bucket=BUCKET, Key="raw/ag/part-001.csv",
                      Body=_csv_rows(ag, n_ag, n_ag - 4) + _csv_rows(ag, 0, 3) + short)
        n_pairs = 120
        for lang in ("en", "de"):
            s3.put_object(Bucket=BUCKET, Key=f"raw/m30k/train.{lang}.gz",
                          Body=_gz_lines(DEMO_DATA / f"multi30k_train_3k.{lang}.gz", n_pairs))
        # A small corpus in which nothing is rejected (see test_s3.py::test_build_with_no_rejects).
        s3.put_object(Bucket=BUCKET, Key="raw/clean/part-000.csv", Body=_csv_rows(ag, 200, 20))
        yield {"endpoint": endpoint, "bucket": BUCKET, "counts": {"agnews": 2 * n_ag, "m30k-en-de": n_pairs},
               "planted": {"exact_duplicate": 3, "too_short": 1}}


# ------------------------------------------------------------------------------------ Ray head
@pytest.fixture(scope="module")
def ray_head():
    """A real Ray head (`ray start --head --block`) on loopback with token auth, its own ports and
    temp dir. Yields {address (job server URL), token, temp_dir}.

    The token is explicit (RAY_AUTH_TOKEN, highest priority in Ray's token loader, ahead of
    RAY_AUTH_TOKEN_PATH and ~/.ray/auth_token), so the test does not depend on files in HOME.
    Teardown SIGTERMs the blocking `ray start` (which shuts its node down) and then kills any
    process still naming our temp dir. It never runs `ray stop`, which would kill every Ray
    on the machine, including this pytest's own in-process one.
    """
    token = secrets.token_hex(32)
    temp_dir = tempfile.mkdtemp(prefix="sftray-head-", dir="/tmp")  # short: Ray's socket paths have a length limit
    dash = free_port()
    log_path = Path(temp_dir) / "ray-start.log"
    # Fake cloud credentials in the cluster's environment, as on a real node: the secrets test
    # greps every output and log of the job for them (and for the token).
    aws = {"AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(), "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30)}
    proc, _ = start_ray_node(temp_dir, token, log_path, num_cpus=4, env_extra=aws, dashboard_port=dash)
    address = f"http://127.0.0.1:{dash}"
    try:
        t0 = time.time()
        wait_http(address + "/api/version", 180, headers={"Authorization": f"Bearer {token}"}, proc=proc)
        # The job server answers once the dashboard is up; the job agent on the node may lag.
        wait_http(address + "/api/jobs/", 60, headers={"Authorization": f"Bearer {token}"}, proc=proc)
        print(f"\n[ray_head] up in {time.time() - t0:.1f} s at {address} (temp dir {temp_dir})", flush=True)
        yield {"address": address, "token": token, "temp_dir": temp_dir, "log": log_path, "secrets": [token, *aws.values()]}
    except BaseException:
        print(log_path.read_text()[-4000:], file=sys.stderr)
        raise
    finally:
        stop_ray_node(proc)
        kill_mentioning(temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)

