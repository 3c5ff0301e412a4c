"""`placement`: which node types each kind of work may run on (sft_ray/placement.py applies it)."""

from __future__ import annotations

from pydantic import Field

from sft_ray.config.base import StrictModel


class PlacementConfig(StrictModel):
    """Which nodes each kind of work runs on, as Ray node-label selectors (sft_ray/placement.py;
    cluster/README.md, "Stage placement"). Empty: anywhere, as on a laptop."""

    curation: dict[str, str] = Field(
        default_factory=dict,
        description="Label selector for every Ray Data task and actor of the build (read, clean, dedup, format, write), "
        "e.g. {sft-ray/pool: data}.",
    )
    models: dict[str, str] = Field(
        default_factory=dict,
        description="Label selector for the build's model actor pools (labelers, teacher, semantic dedup); use the same "
        "key as curation, e.g. {sft-ray/pool: gpu}: on a shared key it wins over curation's.",
    )
    train: dict[str, str] = Field(
        default_factory=dict,
        description="Label selector for the Ray Train workers and the training data's tokenizer actors, e.g. {sft-ray/pool: gpu}.",
    )
    strict_shuffle: bool = Field(
        # benchmarks/placed_build.py, one node, demo build: 16.9 s unplaced, 42.5 s placed, 47.0 s with HASH_SHUFFLE and no
        # selector, 19.1 s placed with strict_shuffle off (benchmarks/results/placed_build.log).
        default=True,
        description="With a selector set, shuffle with HASH_SHUFFLE, whose tasks and aggregators honour it. False keeps "
        "Ray Data's default SHUFFLE_V2, about 2x faster on small builds, but its reduce tasks ignore selectors and may "
        "run on (or make the autoscaler start) any node type.",
    )
