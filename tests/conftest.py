"""Shared fixtures: a local Ray (started once per session) and paths to the real corpora."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_CORPORA = REPO.parent / "shared" / "corpora"  # optional: benchmarks and the tests that skip without it
TEST_DATA = REPO / "tests" / "data"  # small real inputs the tests need, with their licences (tests/data/NOTICE.md)
DEMO_DATA = REPO / "sft_ray" / "demo" / "data"


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: end-to-end tests (run in CI; deselect with -m 'not slow')")
    # A fresh Hugging Face datasets cache per session: `datasets.load_dataset(FOLDER)` caches a local folder
    # under its name ("demo") without regard to the files' contents, so a build loaded by an earlier session
    # (another checkout, older columns) would be returned instead of this one's.
    import tempfile

    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp(prefix="sft_ray_test_hf_datasets_")


@pytest.fixture(scope="session")
def ray_local():
    """A local Ray for the whole session; jobs under test call init_ray(), which reuses it."""
    import ray

    from sft_ray.runtime import init_ray

    os.environ.pop("RAY_ADDRESS", None)
    init_ray()
    yield ray
    ray.shutdown()
