"""Exact dedup is global: the same corpus in 1, 4 or 16 blocks, shuffled, gives the same survivors."""

from __future__ import annotations

import random

import pytest
import ray

from sft_ray import schema
from sft_ray.config import DedupConfig
from sft_ray.dedup.exact import exact_dedup


def _corpus():
    base = [f"Document number {i} about topic {i % 7}." for i in range(300)]
    rows = [{"id": f"s-{i:04d}", "source": "s", "kind": "text", "text": t} for i, t in enumerate(base)]
    # 60 exact duplicates of earlier docs with larger ids, 20 case-only variants, 5 already rejected.
    rows += [{"id": f"s-{1000 + i:04d}", "source": "s", "kind": "text", "text": base[i * 3]} for i in range(60)]
    rows += [{"id": f"s-{2000 + i:04d}", "source": "s", "kind": "text", "text": base[i].upper()} for i in range(20)]
    rows += [{"id": f"s-{3000 + i:04d}", "source": "s", "kind": "text", "text": base[0], "reject_stage": "clean", "reject_reason": "too_short"} for i in range(5)]
    rows += [{"id": "p-1", "source": "p", "kind": "translation", "src_text": "Hi.", "tgt_text": "Hallo."},
             {"id": "p-0", "source": "p", "kind": "translation", "src_text": "Hi.", "tgt_text": "Hallo."},
             {"id": "p-2", "source": "p", "kind": "translation", "src_text": "Hi.", "tgt_text": "Servus."}]
    return rows


def _run(rows, blocks, cfg=DedupConfig(num_partitions=3)):
    ds = ray.data.from_arrow([schema.records_from_rows(part) for part in _chunks(rows, blocks)])
    out = exact_dedup(ds, cfg).take_all()
    return {r["id"]: (r["reject_reason"], r["duplicate_of"]) for r in out}, len(out)


def _chunks(rows, n):
    k = -(-len(rows) // n)
    return [rows[i : i + k] for i in range(0, len(rows), k)]


@pytest.mark.parametrize("blocks", [1, 4, 16])
def test_same_survivors_whatever_the_partitioning(ray_local, blocks):
    rows = _corpus()
    ref, n_ref = _run(rows, 1)
    shuffled = rows[:]
    random.Random(blocks).shuffle(shuffled)
    got, n = _run(shuffled, blocks)
    assert n == n_ref == len(rows) and got == ref


def test_smallest_id_survives_and_duplicates_point_at_it(ray_local):
    got, _ = _run(_corpus(), 4)
    assert got["s-0000"] == (None, None)
    assert got["s-1000"] == ("exact_duplicate", "s-0000") and got["s-1001"] == ("exact_duplicate", "s-0003")
    assert got["s-2000"] == (None, None)  # case differs: not exact without lowercase
    assert got["s-3000"] == ("too_short", None)  # earlier rejects pass through untouched
    assert got["p-0"] == (None, None) and got["p-1"] == ("exact_duplicate", "p-0") and got["p-2"] == (None, None)
    assert sum(1 for v in got.values() if v[0] == "exact_duplicate") == 61


def test_lowercase_option_catches_case_variants(ray_local):
    got, _ = _run(_corpus(), 4, DedupConfig(num_partitions=2, exact={"lowercase": True}))
    assert got["s-2000"] == ("exact_duplicate", "s-0000")


def test_raw_identical_records_get_unique_reject_ids(ray_local):
    rows = [{"id": "s-same", "source": "s", "kind": "text", "text": "identical text", "meta": f'{{"line": {i}}}'} for i in range(3)]
    got, n = _run(rows, 2)
    assert n == 3 and got == {"s-same": (None, None), "s-same~dup1": ("exact_duplicate", "s-same"), "s-same~dup2": ("exact_duplicate", "s-same")}


def test_source_side_key_keeps_one_translation_per_source_sentence(ray_local):
    got, _ = _run(_corpus(), 4, DedupConfig(num_partitions=2, exact={"pair_key": "source"}))
    assert got["p-0"] == (None, None)
    assert got["p-1"] == ("exact_duplicate", "p-0") and got["p-2"] == ("exact_duplicate", "p-0")  # "Servus." too


def test_content_key_folds_full_width_forms_with_nfkc():
    from sft_ray.dedup.exact import content_key

    plain, wide = "iPhone 15 价格 ABC-123。", "ｉＰｈｏｎｅ　１５ 价格 ＡＢＣ－１２３。"
    assert content_key("web", plain, None, None, False, nfkc=True) == content_key("web", wide, None, None, False, nfkc=True)
    assert content_key("web", plain, None, None, False) != content_key("web", wide, None, None, False)
    assert DedupConfig().exact.nfkc
