"""What a run records about itself besides counts: library versions (for reproducing it)."""

from __future__ import annotations

import platform
from importlib import metadata

PACKAGES = ["sft_ray", "ray", "pyarrow", "fsspec", "s3fs", "torch", "transformers", "pydantic"]


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for p in PACKAGES:
        try:
            out[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            out[p] = "not installed"
    return out
