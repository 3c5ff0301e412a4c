"""Report: counts at every stage, the data profile, dedup clusters, label quality, and report.html."""

from __future__ import annotations

from sft_ray.report.aggregates import data_profile
from sft_ray.report.clusters import dedup_clusters
from sft_ray.report.counts import record_counts, sft_counts
from sft_ray.report.html import render_html, write_report


def report_data(records, num_partitions: int | None = None) -> dict:
    """What the report needs from the records beyond the counts (Ray Data aggregates, tiny results)."""
    return {"data": data_profile(records), "dedup_clusters": dedup_clusters(records, num_partitions=num_partitions)}


__all__ = ["data_profile", "dedup_clusters", "record_counts", "render_html", "report_data", "sft_counts", "write_report"]
