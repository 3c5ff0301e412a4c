"""Dedup: global exact deduplication, MinHash-LSH near-duplicates, decontamination against evaluation sets."""

from sft_ray.dedup.contamination import decontaminate
from sft_ray.dedup.exact import exact_dedup
from sft_ray.dedup.near import near_dedup

__all__ = ["decontaminate", "exact_dedup", "near_dedup"]
