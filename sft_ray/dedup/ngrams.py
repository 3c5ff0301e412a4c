"""Word n-gram hashes for decontamination (contamination.py, validation_join.py), and which records take part.

Words are runs of letters/digits, lowercased; Chinese, Japanese, Thai, Lao, Khmer and Myanmar
characters are one word each, since those scripts have no spaces (an n-gram of characters is what
overlap means there). An
evaluation item counts with its `ngram`-grams (13, GPT-3, Brown et al. 2020, appendix C); an item
shorter than that counts with its whole length, down to `min_ngram` words, and shorter ones are
ignored (a 5-word question is too common to be evidence; GPT-3 did the same).
"""

from __future__ import annotations

import hashlib
import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sft_ray import schema
from sft_ray.config import DecontaminateConfig
from sft_ray.tags import live_mask

_CJK = r"\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_TOKEN = re.compile(rf"[{_CJK}]|[^\W{_CJK}]+")
_P = np.uint64(0x100000001B3)  # FNV-64 prime as the polynomial base of the rolling n-gram hash
TEXT_COLUMNS = [schema.TEXT, schema.TITLE, schema.SRC_TEXT, schema.TGT_TEXT, schema.QUESTION, schema.ANSWER]
Index = dict[int, np.ndarray]  # n-gram length -> sorted unique uint64 hashes


def token_hashes(text: str, cache: dict[str, int]) -> np.ndarray:
    """Stable 64-bit hash per lowercased word (blake2b: Python's hash() differs between workers)."""
    out = []
    for tok in _TOKEN.findall(text.lower()):
        h = cache.get(tok)
        if h is None:
            h = cache[tok] = int.from_bytes(hashlib.blake2b(tok.encode(), digest_size=8).digest(), "little")
        out.append(h)
    return np.array(out, dtype=np.uint64)


def word_count(text: str) -> int:
    return len(_TOKEN.findall(text.lower()))


def ngram_hashes(th: np.ndarray, n: int) -> np.ndarray:
    """Hashes of every n-gram of a token-hash array (polynomial rolling hash, wrapping uint64)."""
    m = len(th) - n + 1
    if m <= 0:
        return np.empty(0, dtype=np.uint64)
    acc = np.zeros(m, dtype=np.uint64)
    for j in range(n):
        acc = acc * _P + th[j : j + m]
    return acc


def item_length(words: int, cfg: DecontaminateConfig) -> int | None:
    """The n-gram length an evaluation item of `words` words counts with (None: too short to count)."""
    if words >= cfg.ngram:
        return cfg.ngram
    return words if words >= cfg.min_ngram else None


def item_grams(text: str, cfg: DecontaminateConfig, cache: dict[str, int]) -> tuple[int, np.ndarray] | None:
    th = token_hashes(text, cache)
    n = item_length(len(th), cfg)
    return None if n is None else (n, ngram_hashes(th, n))


def build_index(items, cfg: DecontaminateConfig) -> Index:
    parts: dict[int, list[np.ndarray]] = {}
    cache: dict[str, int] = {}
    for text in items:
        g = item_grams(text, cfg, cache) if text else None
        if g is not None:
            parts.setdefault(g[0], []).append(g[1])
    return {n: np.unique(np.concatenate(arrs)) for n, arrs in parts.items()}


def takes_part(table: pa.Table, kinds: frozenset[str] | None) -> np.ndarray:
    """Live records of `kinds` (None: every kind): the kinds that yield SFT examples (build.py's
    `example_kinds`); a record nothing is trained on is neither indexed nor checked."""
    mask = live_mask(table)
    if kinds is not None:
        mask = pc.and_(mask, pc.fill_null(pc.is_in(table[schema.KIND], value_set=pa.array(sorted(kinds), pa.string())), False))
    return mask.to_numpy(zero_copy_only=False)


def split_is(table: pa.Table, split: str) -> np.ndarray:
    return pc.fill_null(pc.equal(table[schema.SPLIT], split), False).to_numpy(zero_copy_only=False)
