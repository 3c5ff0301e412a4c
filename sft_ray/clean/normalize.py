"""Unicode NFC + whitespace normalisation, then length bounds.

NFC first so that visually identical strings compare (and hash) equal in dedup: "é" as one code
point or as "e" + combining accent (Unicode TR15). Whitespace: runs of spaces/tabs collapse to
one space, lines are trimmed, 3+ newlines collapse to a paragraph break; line structure is kept
because later quality filters (Gopher, C4, FineWeb) reason about lines.
"""

from __future__ import annotations

import re
import unicodedata

import pyarrow as pa

from sft_ray import schema as S
from sft_ray.config import CleanConfig
from sft_ray.tags import live_mask, set_columns, tag

STAGE = "clean"
_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
TEXT_COLUMNS = [S.TEXT, S.TITLE, S.SRC_TEXT, S.TGT_TEXT]


def normalize_text(text: str | None) -> str | None:
    if text is None:
        return None
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()


def length_reason(rec_kind: str, text: str | None, src: str | None, tgt: str | None, cfg: CleanConfig) -> str | None:
    if rec_kind == "translation":
        sides = [src or "", tgt or ""]
        if any(len(s) < cfg.pair_min_chars for s in sides):
            return "too_short"
        if any(len(s) > cfg.pair_max_chars for s in sides):
            return "too_long"
        return None
    n = len(text or "")
    if n < cfg.min_chars:
        return "too_short"
    if n > cfg.max_chars:
        return "too_long"
    return None


def normalize_batch(table: pa.Table, cfg: CleanConfig) -> pa.Table:
    """First link of `clean_batch`: normalise live rows, tag length rejects."""
    live = live_mask(table).to_pylist()
    if cfg.normalize:
        cols = {}
        for c in TEXT_COLUMNS:
            values = table[c].to_pylist()
            cols[c] = [normalize_text(v) if ok else v for v, ok in zip(values, live)]
        table = set_columns(table, cols)
    kinds = table[S.KIND].to_pylist()
    texts, srcs, tgts = (table[c].to_pylist() for c in (S.TEXT, S.SRC_TEXT, S.TGT_TEXT))
    reasons = [length_reason(k, t, s, g, cfg) for k, t, s, g in zip(kinds, texts, srcs, tgts)]
    return tag(table, STAGE, reasons)
