"""Dedup: global exact deduplication (issue 4 adds MinHash-LSH, SFT-aware and decontamination)."""

from sft_ray.dedup.exact import exact_dedup

__all__ = ["exact_dedup"]
