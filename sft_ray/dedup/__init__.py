"""Dedup: global exact deduplication, MinHash-LSH near-duplicates, semantic (embedding) duplicates,
decontamination against evaluation sets, and exact dedup of the formatted SFT examples (sft.py)."""

from sft_ray.dedup.contamination import decontaminate
from sft_ray.dedup.exact import exact_dedup
from sft_ray.dedup.near import near_dedup
from sft_ray.dedup.semantic import semantic_dedup

__all__ = ["decontaminate", "exact_dedup", "near_dedup", "semantic_dedup"]
