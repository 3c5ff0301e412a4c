"""MinHash signatures of a whole Arrow batch at once: normalise -> shingle -> hash -> b*r minima.

MinHash (Broder 1997, "On the resemblance and containment of documents") estimates the Jaccard
similarity of two shingle sets: under a random permutation of the shingle universe, the chance that
both sets have the same minimum equals their Jaccard similarity. LSH then cuts b*r such minima into
b bands of r rows (Leskovec, Rajaraman & Ullman, *Mining of Massive Datasets*, ch. 3.4): two
documents become candidates when any band matches, with probability 1 - (1 - s^r)^b, the S-curve
whose steep part sits near (1/b)^(1/r). Defaults follow FineWeb / DataTrove (word 5-grams, 14 bands x
8 rows, threshold ~0.72); DataTrove's `MinhashDedupSignature` and text-dedup's `minhash.py` are the
reference implementations this mirrors.

Everything here works on whole columns with pyarrow compute and numpy, no Python per word:
  normalise   lowercase (Arrow's ascii_lower / utf8_lower), optionally digits -> 0 and diacritics
              stripped (NFKD minus marks, Arrow kernels); punctuation, symbols and whitespace are
              not rewritten but flagged per byte as separators (a regex replace per space through
              Arrow's RE2 costs ~2 us a match, more than all the rest)
  tokens      words = runs of non-separator bytes (or code points and one space per gap, with
              `char_ngrams`)
  token hash  polynomial over the token's bytes mod 2^64 from prefix sums (the same value wherever
              the token sits), then the splitmix64 finaliser
  shingles    n consecutive token hashes combined the same way -> one 64-bit hash per shingle; a
              document with fewer than n tokens is one shingle of all of them
  minhash     K = b*r permutations h_k(x) = (a_k x + b_k) mod 2^32, a_k odd, over x = 32 bits of the
              shingle hash; the signature is the per-document minimum of each h_k
  bands       the r values of each band folded into one 64-bit key (band index mixed in)

Why mod 2^32 and not DataTrove's (a x + b) mod (2^61 - 1): in uint64 numpy that product overflows
(DataTrove and datasketch both let it wrap), and doing it exactly costs ~5 more numpy passes per
permutation. Shingle hashes are already uniform, and any bijection of uniform keys keeps them
uniform, so each h_k's minimum lands on a uniformly random member of the union: P[equal minima] =
Jaccard exactly, which is all MinHash needs of one permutation; distinct odd multipliers keep the K
minima close to independent (tests/dedup/test_minhash.py checks the estimator's error against the
binomial sqrt(J(1-J)/K) on real text). It is 2 uint32 passes per permutation instead of 3-6 uint64
ones (measured here 8x faster than `% (2^61-1)` in uint64), and it is most of the CPU time.

The 64-bit shingle hashes also give the exact Jaccard used to verify LSH candidates (lsh.py);
hash collisions at 64 bits are negligible (~n^2 / 2^64).
"""

from __future__ import annotations

import functools
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from sft_ray.config import NearDedupConfig

U64 = np.uint64
_M64 = (1 << 64) - 1
# Odd 64-bit constants: polynomial bases for token bytes, shingle tokens and band rows, and length salts.
_BYTE_BASE, _TOKEN_BASE, _ROW_BASE = 0x9E3779B97F4A7C15, 0xC2B2AE3D27D4EB4F, 0x165667B19E3779F9
_LEN_SALT, _BAND_SALT = 0xD6E8FEB86659FD93, 0xFF51AFD7ED558CCD
# Keep the per-byte arrays of one step bounded (bytes of normalised text per sub-batch): memory per
# worker does not grow with the batch size Ray Data hands us (docs/ARCHITECTURE.md, "Scale").
MAX_BYTES_PER_STEP = 1 << 20
# Shingles per MinHash step: K x 4096 uint32 = 1.8 MB at K=112, which stays in cache (measured 5x
# faster than one pass over the whole batch).
SHINGLES_PER_STEP = 4096


# ------------------------------------------------------------------------------------ LSH S-curve
def candidate_probability(s: float, bands: int, rows: int) -> float:
    """P(two documents with Jaccard s share at least one band) = 1 - (1 - s^r)^b (MMDS 3.4.2)."""
    return 1.0 - (1.0 - s**rows) ** bands


def lsh_threshold(bands: int, rows: int) -> float:
    """Where the S-curve is steepest, approximately (1/b)^(1/r) (MMDS 3.4.3)."""
    return (1.0 / bands) ** (1.0 / rows)


def s_curve(bands: int, rows: int, points=(0.5, 0.6, 0.7, 0.8, 0.9)) -> str:
    cells = "  ".join(f"J={s:.1f}: {candidate_probability(s, bands, rows):.3f}" for s in points)
    return f"LSH {bands} bands x {rows} rows, threshold ~{lsh_threshold(bands, rows):.3f}; P(candidate) {cells}"


# ------------------------------------------------------------------------------------ normalise
def _separator(c: str, strip_punctuation: bool) -> bool:
    """What separates tokens: whitespace and Unicode separators (Z*), plus, with
    strip_punctuation, punctuation (P*) and symbols (S*)."""
    cat = unicodedata.category(c)[0]
    return c.isspace() or cat == "Z" or (strip_punctuation and cat in "PS")


@functools.lru_cache(maxsize=8)
def _separator_table(strip_punctuation: bool, plane: int) -> np.ndarray:
    """Separator flag per code point of one 65,536-wide Unicode plane, built on first use in a
    process (the Basic Multilingual Plane takes ~50 ms; others only when a batch has such code points)."""
    base = plane << 16
    return np.fromiter((_separator(chr(base + i), strip_punctuation) for i in range(1 << 16)), dtype=bool, count=1 << 16)


def normalize(texts: pa.Array | pa.ChunkedArray, cfg: NearDedupConfig) -> pa.Array:
    """Case, digits and diacritics per config, as Arrow kernels over the whole column (nulls become
    ""). Punctuation and whitespace are not rewritten: `_separators` flags them in the bytes, which
    avoids a regex replace per space (RE2 through Arrow costs ~2 us per match)."""
    t = pc.fill_null(texts, "")
    if isinstance(t, pa.ChunkedArray):
        t = t.combine_chunks()
    ascii_rows = pc.string_is_ascii(t)
    ascii_only = pc.all(ascii_rows).as_py() is not False
    if cfg.nfkc and not ascii_only:  # NFKC cannot change ASCII
        t = _nfkc(t, ascii_rows)
    if cfg.strip_diacritics:
        t = pc.replace_substring_regex(pc.utf8_normalize(t, "NFKD"), r"\p{Mn}+", "")
    if cfg.lowercase:
        t = pc.ascii_lower(t) if ascii_only else pc.utf8_lower(t)
    if cfg.strip_digits:
        t = pc.replace_substring_regex(t, r"\p{Nd}", "0")
    return t


def _nfkc(t: pa.Array, ascii_rows: pa.Array) -> pa.Array:
    """NFKC of the rows that are not NFKC already. Arrow's utf8_normalize rewrites every row, and on
    web text that was most of MinHash's CPU: 0.25 s of 0.83 s per 13 MB (6,000 documents of
    `benchmarks/near_dedup.py`'s corpus), where 5,619 of the 6,000 rows were NFKC already. CPython's
    `unicodedata.is_normalized` answers from the Unicode quick-check property in one C pass (0.04 s
    with the conversion to str); only the rows it rejects go through Arrow, so every changed row is
    normalised by the same kernel as before. CPython's Unicode tables may be older than Arrow's
    utf8proc: a character assigned in between with a compatibility mapping passes unnormalised."""
    todo = pc.invert(ascii_rows)  # NFKC cannot change ASCII
    candidates = t.filter(todo).to_pylist()
    rows = np.flatnonzero(todo.to_numpy(zero_copy_only=False))
    change = rows[[not unicodedata.is_normalized("NFKC", s) for s in candidates]] if len(rows) else rows
    if len(change) == 0:
        return t
    mask = np.zeros(len(t), bool)
    mask[change] = True
    return pc.replace_with_mask(t, pa.array(mask), pc.utf8_normalize(t.take(pa.array(change)), "NFKC"))


def normalized_text(text: str, cfg: NearDedupConfig) -> str:
    """One text as the shingler sees it: its tokens joined by single spaces (for people and tests;
    the batch path never builds this string)."""
    t = normalize(pa.array([text], pa.string()), cfg)[0].as_py()
    return " ".join("".join(" " if _separator(c, cfg.strip_punctuation) else c for c in t).split())


def _ascii_separators(data: np.ndarray, strip_punctuation: bool) -> np.ndarray:
    """Separator flag of each ASCII byte by range comparisons (2x faster than a table lookup):
    whitespace (tab..CR, FS..US, space), and with strip_punctuation the punctuation and symbols
    !"#$%&'()*+,-./ :;<=>?@ [\\]^_` {|}~ (the same set as `_separator` for code points < 128)."""
    sep = ((data >= 0x09) & (data <= 0x0D)) | ((data >= 0x1C) & (data <= 0x20))
    if strip_punctuation:
        sep |= ((data >= 0x21) & (data <= 0x2F)) | ((data >= 0x3A) & (data <= 0x40))
        sep |= ((data >= 0x5B) & (data <= 0x60)) | ((data >= 0x7B) & (data <= 0x7E))
    return sep


def _separators(data: np.ndarray, strip_punctuation: bool) -> np.ndarray:
    """Separator flag per byte of UTF-8 text (every byte of a separator code point is flagged)."""
    sep = _ascii_separators(data, strip_punctuation)
    lead = np.flatnonzero(data >= 0xC0)  # first bytes of multi-byte code points
    if len(lead) == 0:
        return sep
    last = len(data) - 1
    b0 = data[lead].astype(np.uint32)
    b1, b2, b3 = (data[np.minimum(lead + k, last)].astype(np.uint32) & 0x3F for k in (1, 2, 3))
    width = np.where(b0 < 0xE0, 2, np.where(b0 < 0xF0, 3, 4))
    cp = np.where(
        width == 2,
        ((b0 & 0x1F) << 6) | b1,
        np.where(width == 3, ((b0 & 0x0F) << 12) | (b1 << 6) | b2, ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3),
    )
    flag = np.zeros(len(lead), bool)
    plane = cp >> 16
    for pl in np.unique(plane):
        m = plane == pl
        flag[m] = _separator_table(strip_punctuation, int(pl))[cp[m] & 0xFFFF]
    for k in range(4):
        m = width > k
        sep[np.minimum(lead[m] + k, last)] = flag[m]
    return sep


def _tokens(data: np.ndarray, offsets: np.ndarray, cfg: NearDedupConfig, chars: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(start byte, end byte, is-space flag) of every token, in order. Words: maximal runs of
    non-separator bytes inside a document. Characters (`chars`): the non-separator code points,
    plus one space token between two consecutive words of a document."""
    n = len(data)
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, z, np.zeros(0, bool)
    word = ~_separators(data, cfg.strip_punctuation)
    edge = np.zeros(n + 1, dtype=bool)
    edge[offsets] = True  # documents start (and end) at their offsets
    prev_word = np.concatenate(([False], word[:-1])) & ~edge[:-1]
    next_word = np.append(word[1:], False) & ~edge[1:]
    ws, we = np.flatnonzero(word & ~prev_word), np.flatnonzero(word & ~next_word) + 1
    if not chars:
        return ws, we, np.zeros(len(ws), bool)
    cps = np.append(np.flatnonzero((data & 0xC0) != 0x80), n)  # code point starts, then the end
    chars = np.flatnonzero(word[cps[:-1]])
    doc = np.searchsorted(offsets, ws, side="right")
    gaps = we[:-1][doc[:-1] == doc[1:]]  # the separator run after a word, when a word of the same doc follows
    starts = np.concatenate((cps[chars], gaps))
    ends = np.concatenate((cps[chars + 1], gaps + 1))
    space = np.concatenate((np.zeros(len(chars), bool), np.ones(len(gaps), bool)))
    order = np.argsort(starts, kind="stable")
    return starts[order], ends[order], space[order]


# -------------------------------------------------------------------------------------- hashing
def _mix64(z: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser (Steele, Lea & Flood 2014): every output bit depends on every input bit."""
    z = z + U64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> U64(30))) * U64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> U64(27))) * U64(0x94D049BB133111EB)
    return z ^ (z >> U64(31))


def _powers(base: int, n: int) -> np.ndarray:
    """base^0 .. base^(n-1) mod 2^64 (numpy integer products wrap, which is the modulus we want)."""
    p = np.full(max(n, 1), base, dtype=U64)
    p[0] = 1
    return np.cumprod(p, dtype=U64)[:n]


@functools.lru_cache(maxsize=2)
def _byte_powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(Q^i, Q^-i) mod 2^64 for i < n: the byte hash's position weights, reused across batches."""
    return _powers(_BYTE_BASE, n), _powers(pow(_BYTE_BASE, -1, 1 << 64), n)


_SPACE_TOKEN = int(_mix64(np.array([(0x20 + _LEN_SALT) & _M64], U64))[0])


def _token_hashes(data: np.ndarray, starts: np.ndarray, ends: np.ndarray, space: np.ndarray) -> np.ndarray:
    """64-bit hash of each token's bytes, the same wherever the token sits: with prefix sums
    G[k] = sum_{i<k} c_i Q^-i, bytes s..e-1 hash to (G[e] - G[s]) Q^(e-1) = sum_i c_i Q^(e-1-i)."""
    if len(starts) == 0:
        return np.zeros(0, U64)
    n = len(data)
    pw, inv = _byte_powers(max(n, MAX_BYTES_PER_STEP))
    g = np.zeros(n + 1, U64)
    np.cumsum(data * inv[:n], out=g[1:])
    poly = (g[ends] - g[starts]) * pw[ends - 1]
    h = _mix64(poly + (ends - starts).astype(U64) * U64(_LEN_SALT))
    h[space] = _SPACE_TOKEN  # a separator run between words is one " ", whatever its bytes
    return h


def _string_buffers(arr: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(utf-8 bytes, per-row offsets rebased to 0) of a string array, zero-copy."""
    off_type = np.int64 if arr.type == pa.large_string() else np.int32
    if arr.type not in (pa.string(), pa.large_string()):
        arr = arr.cast(pa.string())
    bufs = arr.buffers()
    offsets = np.frombuffer(bufs[1], dtype=off_type, count=len(arr) + 1, offset=arr.offset * np.dtype(off_type).itemsize)
    offsets = offsets.astype(np.int64)
    data = np.frombuffer(bufs[2], dtype=np.uint8) if bufs[2] is not None else np.zeros(0, np.uint8)
    return data[offsets[0] : offsets[-1]], offsets - offsets[0]


def _shingle_hashes(tok: np.ndarray, tok_offsets: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of the n-token windows of every document (a document with 1..n-1 tokens: one window of
    all of them; none: no shingle). Returns (hashes, per-document offsets into them)."""
    counts = np.diff(tok_offsets)
    per_doc = np.where(counts >= n, counts - n + 1, np.minimum(counts, 1))
    sh_offsets = np.concatenate(([0], np.cumsum(per_doc))).astype(np.int64)
    total = int(sh_offsets[-1])
    if total == 0:
        return np.zeros(0, U64), sh_offsets
    first = np.repeat(tok_offsets[:-1], per_doc) + (np.arange(total) - np.repeat(sh_offsets[:-1], per_doc))
    length = np.repeat(np.minimum(counts, n), per_doc)
    padded = np.concatenate((tok, np.zeros(n, U64)))
    pw = _powers(_TOKEN_BASE, n)
    acc = padded[: len(tok)].copy()
    partial = {}
    short = np.flatnonzero(length < n)
    for m in range(1, n):
        if len(short):
            partial[m] = acc[first[short]]  # windows of m tokens, for documents shorter than n
        acc += padded[m : m + len(tok)] * pw[m]
    val = acc[first]
    for m, part in partial.items():
        pick = length[short] == m
        val[short[pick]] = part[pick]
    return _mix64(val + length.astype(U64) * U64(_LEN_SALT)), sh_offsets


def _shingles_of(data: np.ndarray, offsets: np.ndarray, cfg: NearDedupConfig, chars: bool, n: int) -> tuple[np.ndarray, np.ndarray]:
    starts, ends, space = _tokens(data, offsets, cfg, chars)
    tok = _token_hashes(data, starts, ends, space)
    tok_offsets = np.searchsorted(starts, offsets).astype(np.int64)
    return _shingle_hashes(tok, tok_offsets, n)


# Scripts written without spaces between words (Unicode blocks): Thai, Lao, Tibetan, Myanmar, Khmer,
# CJK radicals .. CJK unified ideographs (kana, CJK symbols, extension A included), CJK compatibility
# ideographs, half-width kana, and the supplementary ideographs (extensions B-H).
_NO_SPACE_BLOCKS = np.array(
    [(0x0E00, 0x0FFF), (0x1000, 0x109F), (0x1780, 0x17FF), (0x2E80, 0x9FFF), (0xF900, 0xFAFF), (0xFF66, 0xFF9F), (0x20000, 0x3134F)]
)


def script_docs(data: np.ndarray, offsets: np.ndarray, share: float) -> np.ndarray:
    """Per document: True when at least `share` of its non-space code points are in a script written
    without spaces (`_NO_SPACE_BLOCKS`): those documents shingle by characters. Vectorised over the
    3- and 4-byte UTF-8 sequences (every such script lies above U+0800)."""
    ndocs = len(offsets) - 1
    lead = np.flatnonzero(data >= 0xE0)
    if len(lead) == 0 or ndocs == 0:
        return np.zeros(ndocs, bool)
    last = len(data) - 1
    b0 = data[lead].astype(np.uint32)
    b1, b2, b3 = (data[np.minimum(lead + k, last)].astype(np.uint32) & 0x3F for k in (1, 2, 3))
    cp = np.where(b0 < 0xF0, ((b0 & 0x0F) << 12) | (b1 << 6) | b2, ((b0 & 0x07) << 18) | (b1 << 12) | (b2 << 6) | b3)
    hit = np.zeros(len(cp), bool)
    for lo, hi in _NO_SPACE_BLOCKS:
        hit |= (cp >= lo) & (cp <= hi)
    if not hit.any():  # the usual case (curly quotes and dashes are 3 bytes too): no per-character count
        return np.zeros(ndocs, bool)
    doc = np.searchsorted(offsets, lead[hit], side="right") - 1
    n_script = np.bincount(doc, minlength=ndocs)[:ndocs]
    # Non-space code points per document from a running count (a searchsorted per code point cost
    # 4x as much: 0.11 s per 13 MB).
    running = np.zeros(len(data) + 1, np.int32 if len(data) < 2**31 else np.int64)
    np.cumsum(((data & 0xC0) != 0x80) & ~_ascii_separators(data, False), out=running[1:])
    n_chars = running[offsets[1:]] - running[offsets[:-1]]
    return n_script >= share * np.maximum(n_chars, 1)


def shingles(texts: pa.Array | pa.ChunkedArray, cfg: NearDedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """64-bit shingle hashes of each text: (hashes, offsets) with document i's shingles at
    hashes[offsets[i]:offsets[i+1]] (duplicates kept; np.unique them for a set).

    Word n-grams of `ngram_size`, or with `char_ngrams` character n-grams of `ngram_size` for every
    text. Otherwise, with `script_shingles`, each document written mostly in a script without spaces
    (Chinese, Japanese, Thai, ...: `script_docs`) gets character n-grams of `char_ngram_size`: its
    whitespace "words" are whole sentences, so one edited character would change every word n-gram
    it touches (text-dedup and DataTrove both use character shingles for such text)."""
    data, offsets = _string_buffers(normalize(texts, cfg))
    if cfg.char_ngrams:
        return _shingles_of(data, offsets, cfg, True, cfg.ngram_size)
    by_char = script_docs(data, offsets, cfg.script_share) if cfg.script_shingles else np.zeros(len(offsets) - 1, bool)
    if not by_char.any():
        return _shingles_of(data, offsets, cfg, False, cfg.ngram_size)
    hc, oc = _shingles_of(data, offsets, cfg, True, cfg.char_ngram_size)
    if by_char.all():
        return hc, oc
    hw, ow = _shingles_of(data, offsets, cfg, False, cfg.ngram_size)
    # Per document, its word or its character shingles, in document order (one gather).
    counts = np.where(by_char, np.diff(oc), np.diff(ow))
    src_start = np.where(by_char, oc[:-1] + len(hw), ow[:-1])
    out_offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    idx = np.repeat(src_start - out_offsets[:-1], counts) + np.arange(out_offsets[-1])
    return np.concatenate((hw, hc))[idx], out_offsets


def shingle_sets(texts: pa.Array | pa.ChunkedArray, cfg: NearDedupConfig) -> list[np.ndarray]:
    """Sorted unique shingle hashes per text: the sets whose Jaccard similarity MinHash estimates."""
    h, off = shingles(texts, cfg)
    return [np.unique(h[off[i] : off[i + 1]]) for i in range(len(off) - 1)]


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """Exact Jaccard similarity of two sorted unique hash arrays (two empty sets: 0)."""
    if len(a) == 0 or len(b) == 0:
        return 0.0
    inter = len(np.intersect1d(a, b, assume_unique=True))
    return inter / (len(a) + len(b) - inter)


# -------------------------------------------------------------------------------------- minhash
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The K (multiplier, increment) pairs; multipliers odd so that each h_k is a bijection."""
    rng = np.random.default_rng(seed)
    a = rng.integers(1, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32) | np.uint32(1)
    b = rng.integers(0, 1 << 32, num_perm, dtype=np.uint64).astype(np.uint32)
    return a, b


def signatures(hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(documents, K) uint32 MinHash signatures. Every document must have at least one shingle.

    Works in cache-sized steps of whole documents: (K, step) products, then a segmented minimum."""
    x = hashes.astype(np.uint32)  # the low 32 bits; splitmix64 made all bits uniform
    ndocs, k = len(offsets) - 1, len(a)
    out = np.empty((k, ndocs), np.uint32)
    buf = np.empty((k, SHINGLES_PER_STEP), np.uint32)
    ends = offsets[1:]
    d0 = 0
    while d0 < ndocs:
        s0 = offsets[d0]
        d1 = max(int(np.searchsorted(ends, s0 + SHINGLES_PER_STEP, side="right")), d0 + 1)
        e = ends[d1 - 1]
        m = e - s0
        h = buf[:, :m] if m <= SHINGLES_PER_STEP else np.empty((k, m), np.uint32)
        np.multiply(a[:, None], x[None, s0:e], out=h)
        h += b[:, None]
        out[:, d0:d1] = np.minimum.reduceat(h, offsets[d0:d1] - s0, axis=1)
        d0 = d1
    return out.T


def band_keys(sig: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """(documents, bands) uint64: band i's r minima folded into one key, i mixed in so that equal
    values in different bands never meet in one bucket."""
    v = sig[:, : bands * rows].reshape(len(sig), bands, rows).astype(U64)
    acc = np.zeros(v.shape[:2], U64)
    for j in range(rows):
        acc = acc * U64(_ROW_BASE) + v[:, :, j]
    return _mix64(acc + np.arange(bands, dtype=U64)[None, :] * U64(_BAND_SALT))


def _byte_steps(offsets: np.ndarray) -> list[tuple[int, int]]:
    """Row ranges with at most MAX_BYTES_PER_STEP of text each (a longer single text is its own step)."""
    steps, start = [], 0
    n = len(offsets) - 1
    while start < n:
        stop = int(np.searchsorted(offsets, offsets[start] + MAX_BYTES_PER_STEP, side="right")) - 1
        stop = min(max(stop, start + 1), n)
        steps.append((start, stop))
        start = stop
    return steps


def document_band_keys(texts: pa.Array | pa.ChunkedArray, cfg: NearDedupConfig) -> tuple[np.ndarray, np.ndarray]:
    """(has_shingles bool per text, band keys (texts, bands) uint64; rows of texts without shingles are 0)."""
    texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    a, b = permutations(cfg.num_bands * cfg.rows_per_band, cfg.seed)
    ok = np.zeros(len(texts), bool)
    keys = np.zeros((len(texts), cfg.num_bands), U64)
    _, raw_offsets = _string_buffers(texts)
    for lo, hi in _byte_steps(raw_offsets):
        h, off = shingles(texts.slice(lo, hi - lo), cfg)
        has = np.diff(off) > 0
        if not has.any():
            continue
        nonempty = np.flatnonzero(has)
        # Documents without shingles hold none, so the non-empty ones' offsets stay contiguous.
        sig = signatures(h, np.append(off[nonempty], off[-1]), a, b)
        ok[lo + nonempty] = True
        keys[lo + nonempty] = band_keys(sig, cfg.num_bands, cfg.rows_per_band)
    return ok, keys


def string_hashes(strings: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """64-bit hash of each whole string (ids, for the broadcast joins in lsh.py and near.py)."""
    arr = strings.combine_chunks() if isinstance(strings, pa.ChunkedArray) else strings
    data, offsets = _string_buffers(pc.fill_null(arr, ""))
    return _token_hashes(data, offsets[:-1], offsets[1:], np.zeros(len(arr), bool))
