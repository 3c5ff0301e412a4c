"""Report: counts at every stage, and the human-readable data report."""

from sft_ray.report.counts import record_counts, sft_counts
from sft_ray.report.html import write_report

__all__ = ["record_counts", "sft_counts", "write_report"]
