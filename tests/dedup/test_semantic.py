"""Semantic dedup: paraphrases that exact and MinHash dedup cannot see are tagged, on real AG News
text, with the same survivors whatever the partitioning; k-means and the greedy pass on their own."""

from __future__ import annotations

import csv
import random

import numpy as np
import pytest
import ray

from sft_ray import schema
from sft_ray.config import DedupConfig
from sft_ray.dedup.semantic import fit_centroids, greedy_duplicates, semantic_dedup
from tests.conftest import DEMO_DATA

PARAPHRASES = [  # (original, reworded): MiniLM cosine ~0.99 / 0.89 / 0.82; word 5-gram Jaccard ~0
    ("Scientists have discovered a new species of frog in the rainforests of Papua New Guinea.",
     "A new frog species has been discovered by scientists in Papua New Guinea's rainforests."),
    ("The home team won the championship final 3-1 in front of a sold-out crowd on Saturday night.",
     "In front of a sold-out crowd on Saturday night, the home side won the championship final by 3 goals to 1."),
    ("Oil prices rose sharply on Monday after OPEC announced deep production cuts for the coming quarter.",
     "On Monday, oil prices climbed steeply once OPEC said it would make deep cuts to production next quarter."),
]


def _corpus() -> list[dict]:
    rows = [{"id": f"ag-{i:04d}", "source": "ag", "kind": "news", "text": r[2]}
            for i, r in enumerate(csv.reader(open(DEMO_DATA / "ag_news_test_part.csv", encoding="utf-8"))) if i < 240]
    for j, (a, b) in enumerate(PARAPHRASES):
        rows += [{"id": f"p-{j}a", "source": "p", "kind": "news", "text": a}, {"id": f"p-{j}b", "source": "p", "kind": "news", "text": b}]
    rows.append({"id": "t-0", "source": "t", "kind": "translation", "src_text": PARAPHRASES[0][0], "tgt_text": "x"})  # other kind
    rows.append({"id": "p-9", "source": "p", "kind": "news", "text": PARAPHRASES[0][0], "reject_stage": "clean", "reject_reason": "too_short"})
    return rows


CFG = DedupConfig(num_partitions=3, semantic={"enabled": True, "threshold": 0.8, "cluster_size": 40, "concurrency": 1})


def _run(rows: list[dict], blocks: int) -> dict[str, tuple]:
    k = -(-len(rows) // blocks)
    ds = ray.data.from_arrow([schema.records_from_rows(rows[i : i + k]) for i in range(0, len(rows), k)])
    out = semantic_dedup(ds, CFG).take_all()
    assert len(out) == len(rows) and "semantic_embedding" not in out[0]
    return {r["id"]: (r["reject_reason"], r["duplicate_of"]) for r in out}


@pytest.fixture(scope="module")
def one_block(ray_local):
    return _run(_corpus(), 1)


def test_paraphrases_are_tagged_and_other_rows_pass_through(one_block):
    for j in range(3):
        assert one_block[f"p-{j}a"] == (None, None)
        assert one_block[f"p-{j}b"] == ("semantic_duplicate", f"p-{j}a")
    assert one_block["t-0"] == (None, None)  # translation pairs are not a configured kind
    assert one_block["p-9"] == ("too_short", None)  # an earlier reject keeps its reason
    removed = [k for k, v in one_block.items() if v[0] == "semantic_duplicate"]
    assert len(removed) < 12  # AG News has a handful of re-run wire stories; the rest is distinct


def test_same_survivors_whatever_the_partitioning(one_block):
    rows = _corpus()
    random.Random(4).shuffle(rows)
    assert _run(rows, 4) == one_block


def test_greedy_keeps_the_smallest_id_and_compares_with_kept_rows_only():
    e = np.array([[1, 0], [0.96, 0.28], [0.85, 0.53], [0, 1]], np.float32)
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    # row 1 ~ row 0 (cos .96): duplicate of 0. Row 2 ~ row 1 (.98) but row 1 is gone, and row 2 ~ row 0 is .85.
    assert greedy_duplicates(e, 0.9).tolist() == [-1, 0, -1, -1]
    assert greedy_duplicates(e, 0.8).tolist() == [-1, 0, 0, -1]


def test_kmeans_is_deterministic_and_finds_separated_groups():
    rng = np.random.default_rng(0)
    centers = np.eye(4, 16, dtype=np.float32)
    x = np.concatenate([c + 0.05 * rng.standard_normal((50, 16)).astype(np.float32) for c in centers])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    c1, c2 = fit_centroids(x, 4, 10, seed=0), fit_centroids(x, 4, 10, seed=0)
    assert np.array_equal(c1, c2)
    groups = np.argmax(x @ c1.T, axis=1).reshape(4, 50)
    assert all(len(set(g)) == 1 for g in groups) and len({g[0] for g in groups}) == 4
