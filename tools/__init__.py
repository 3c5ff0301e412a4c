"""Generators of data the package ships, and helpers that benchmarks and tests share (see README.md)."""

from __future__ import annotations

import os
from pathlib import Path

#: The shared input corpora (gold web pages, AG News, WMT22, XQuAD, ...): $SFT_RAY_CORPORA.
CORPORA = Path(os.environ.get("SFT_RAY_CORPORA", "/work/shared/corpora"))
