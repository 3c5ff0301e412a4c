"""Clean: normalise text and reject records outside length bounds (issue 3 adds extraction,
quality filters, language ID, PII and bitext filters as further stages here)."""

from sft_ray.clean.normalize import clean_batch

__all__ = ["clean_batch"]
