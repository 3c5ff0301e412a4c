"""MinHash-LSH near-dedup: shingles and signatures on real text, planted near-duplicates found with
the right survivor, untouched rows, and the same tags whatever the partitioning (both the broadcast
path and the all-shuffle path)."""

from __future__ import annotations

import csv
import json
import random
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
import ray
from conftest import DEMO_DATA, TEST_DATA

from sft_ray import schema
from sft_ray.config import DedupConfig, NearDedupConfig
from sft_ray.dedup import near_dedup
from sft_ray.dedup.components import star_labels
from sft_ray.dedup.minhash import (
    _nfkc,
    candidate_probability,
    jaccard,
    lsh_threshold,
    normalized_text,
    permutations,
    shingle_sets,
    shingles,
    signatures,
)


def _ag_news() -> list[str]:
    path = DEMO_DATA / "ag_news_test_part.csv"
    with open(path, newline="", encoding="utf-8") as f:
        return [f"{title}. {desc}" for _label, title, desc in csv.reader(f)]


def _xquad(lang: str) -> list[str]:
    path = TEST_DATA / f"qa/xquad/xquad.{lang}.json"
    return [p["context"] for a in json.loads(path.read_text(encoding="utf-8"))["data"] for p in a["paragraphs"]][:40]


# A plain-Python reference of the normalisation and shingles (what the vectorised code must equal).
def _ref_words(text: str) -> list[str]:
    def sep(c):
        return c.isspace() or unicodedata.category(c)[0] in "ZPS"

    return "".join(" " if sep(c) else c for c in unicodedata.normalize("NFKC", text).lower()).split()


def _ref_shingles(text: str, n: int = 5, chars: bool = False) -> set:
    toks = list(" ".join(_ref_words(text))) if chars else _ref_words(text)
    if not toks:
        return set()
    return {tuple(toks)} if len(toks) < n else {tuple(toks[i : i + n]) for i in range(len(toks) - n + 1)}


def _ref_jaccard(a: str, b: str, **kw) -> float:
    x, y = _ref_shingles(a, **kw), _ref_shingles(b, **kw)
    return len(x & y) / len(x | y) if x and y else 0.0


def _edit(text: str, rate: float, rng: random.Random) -> str:
    vocab = text.split()
    out = []
    for w in text.split():
        r = rng.random()
        if r < rate / 2:
            continue
        out.append(rng.choice(vocab) if r < rate else w)
    return " ".join(out)


# ----------------------------------------------------------------------------------- unit tests
@pytest.mark.parametrize("chars,n", [(False, 5), (True, 5), (False, 1)])
def test_shingle_sets_equal_plain_python_on_real_text(chars, n):
    texts = _ag_news()[:300] + _xquad("de") + _xquad("zh") + ["", "  !!  ", "one two", "Emoji 😀 — “quoted” naïve…\ttab"]
    cfg = NearDedupConfig(char_ngrams=chars, ngram_size=n, script_shingles=False)  # one tokenizer for all (per-script: below)
    got = shingle_sets(pa.array(texts), cfg)
    assert [len(s) for s in got] == [len(_ref_shingles(t, n, chars)) for t in texts]
    assert all(normalized_text(t, cfg) == " ".join(_ref_words(t)) for t in texts[:50])
    rng = random.Random(n)
    pairs = [(a, _edit(a, 0.05, rng)) for a in (" ".join(rng.sample(texts[:300], 4)) for _ in range(50))]
    a = shingle_sets(pa.array([p[0] for p in pairs]), cfg)
    b = shingle_sets(pa.array([p[1] for p in pairs]), cfg)
    assert [jaccard(x, y) for x, y in zip(a, b)] == pytest.approx([_ref_jaccard(x, y, n=n, chars=chars) for x, y in pairs], abs=1e-12)


def test_nfkc_of_the_rows_that_need_it_equals_arrows_nfkc_of_every_row():
    """Only rows CPython's quick check finds not NFKC go through Arrow's kernel; the column equals
    Arrow's NFKC of every row on real multilingual text and on compatibility forms."""
    ja = (TEST_DATA / "lang/wmt22.ja-en.src.ja.txt").read_text(encoding="utf-8").splitlines()[:50]
    odd = ["ﬁne ﬂour", "ＡＢＣ１２３", "e\u0301te", "A\u030a", "x² ½", "Ⅻ ㎏", "\u1100\u1161", "naïve…"]
    texts = pa.array(_ag_news()[:200] + _xquad("de") + _xquad("zh") + ja + odd)
    got = _nfkc(texts, pc.string_is_ascii(texts))
    assert got.to_pylist() == pc.utf8_normalize(texts, "NFKC").to_pylist()
    assert got.to_pylist()[-len(odd):] != odd  # the compatibility forms did change


def test_minhash_estimates_jaccard_within_binomial_error():
    """The estimate's error behaves like sqrt(J(1-J)/K) of independent permutations, across J."""
    news = _ag_news()
    rng = random.Random(0)
    pairs = []
    for _ in range(600):
        doc = " ".join(rng.sample(news, 8))
        pairs.append((doc, _edit(doc, rng.choice([0.01, 0.03, 0.06, 0.1, 0.2]), rng)))
    cfg, k = NearDedupConfig(), 112
    a, b = permutations(k, seed=1)
    sig = [signatures(*shingles(pa.array([p[i] for p in pairs]), cfg), a, b) for i in (0, 1)]
    est = (sig[0] == sig[1]).mean(axis=1)
    true = np.array([jaccard(x, y) for x, y in zip(*(shingle_sets(pa.array([p[i] for p in pairs]), cfg) for i in (0, 1)))])
    keep = (true > 0.05) & (true < 0.95)
    z = (est - true)[keep] / np.sqrt(true[keep] * (1 - true[keep]) / k)
    assert keep.sum() > 300
    assert abs(z.mean()) < 0.15 and 0.8 < z.std() < 1.25
    assert np.abs(est - true).max() < 0.2


def test_s_curve_of_fineweb_bands():
    assert lsh_threshold(14, 8) == pytest.approx(0.719, abs=1e-3)
    assert candidate_probability(0.5, 14, 8) == pytest.approx(0.053, abs=1e-3)
    assert candidate_probability(0.8, 14, 8) == pytest.approx(0.924, abs=1e-3)
    assert candidate_probability(0.9, 14, 8) > 0.999


def test_star_labels_are_components_rooted_at_smallest():
    rng = random.Random(0)
    for _ in range(100):
        n, m = rng.randint(2, 40), rng.randint(1, 50)
        a = np.array([rng.randrange(n) for _ in range(m)])
        b = np.array([rng.randrange(n) for _ in range(m)])
        parent = list(range(n))

        def find(x):
            while parent[x] != x:
                x = parent[x]
            return x

        for x, y in zip(a, b):
            rx, ry = find(x), find(y)
            parent[max(rx, ry)] = min(rx, ry)
        expected = {x: find(x) for x in set(a) | set(b) if find(x) != x}
        nodes, roots = star_labels(a, b)
        assert dict(zip(nodes.tolist(), roots.tolist())) == expected


# ------------------------------------------------------------------------------------ Ray tests
def _corpus() -> tuple[list[dict], dict]:
    """150 AG News documents (4 descriptions each) plus planted near-duplicates of known Jaccard."""
    news = _ag_news()
    rng = random.Random(7)
    base = [" ".join(news[i * 4 : i * 4 + 4]) for i in range(150)]
    rows = [{"id": f"n-{i:04d}", "source": "ag", "kind": "news", "text": t} for i, t in enumerate(base)]
    expect = {}
    # Format-only copies (Jaccard 1 after normalisation): survivor is the original's smaller id.
    for i in range(10):
        rows.append({"id": f"n-{1000 + i:04d}", "source": "ag", "kind": "news", "text": base[i].upper().replace(" ", "  \n")})
        expect[f"n-{1000 + i:04d}"] = f"n-{i:04d}"
    # A copy with a smaller id than its original: the copy survives, the original is tagged.
    rows.append({"id": "m-0000", "source": "ag", "kind": "news", "text": base[20] + " Advertisement"})
    expect["n-0020"] = "m-0000"
    # Light word edits (Jaccard >= 0.85, checked below) and heavy ones (< 0.5): found / not found.
    for i in range(30, 40):
        light = _edit(base[i], 0.01, rng)
        heavy = _edit(base[i], 0.3, rng)
        assert _ref_jaccard(light, base[i]) >= 0.85 and _ref_jaccard(heavy, base[i]) < 0.5
        rows.append({"id": f"n-{2000 + i:04d}", "source": "ag", "kind": "news", "text": light})
        rows.append({"id": f"n-{3000 + i:04d}", "source": "ag", "kind": "news", "text": heavy})
        expect[f"n-{2000 + i:04d}"] = f"n-{i:04d}"
    # A chain: A ~ B and B ~ C at >= 0.8, A ~ C below: C still joins A's component (transitive).
    words = base[50].split() + base[51].split()
    k = len(words) // 12
    filler = news[1000].split() + news[1001].split()
    a, b, c = (" ".join(words[i * k :] + filler[: i * k]) for i in range(3))
    assert _ref_jaccard(a, b) >= 0.8 and _ref_jaccard(b, c) >= 0.8 and _ref_jaccard(a, c) < 0.8
    rows[50]["text"] = a
    rows += [{"id": "n-4001", "source": "ag", "kind": "news", "text": b}, {"id": "n-4002", "source": "ag", "kind": "news", "text": c}]
    expect["n-4001"] = expect["n-4002"] = "n-0050"
    # Untouched: an already-rejected copy, a kind not configured, a translation pair, an empty text.
    rows.append({"id": "n-5000", "source": "ag", "kind": "news", "text": base[0], "reject_stage": "clean", "reject_reason": "too_short"})
    rows.append({"id": "n-5001", "source": "ag", "kind": "sft", "text": base[1]})
    rows.append({"id": "p-0", "source": "p", "kind": "translation", "src_text": "Hi.", "tgt_text": "Hallo."})
    rows.append({"id": "n-5002", "source": "ag", "kind": "news", "text": " ... "})
    rows.append({"id": "n-5003", "source": "ag", "kind": "news", "text": " ... "})
    return rows, expect


def _run(rows: list[dict], blocks: int, cfg: DedupConfig) -> dict:
    k = -(-len(rows) // blocks)
    ds = ray.data.from_arrow([schema.records_from_rows(rows[i : i + k]) for i in range(0, len(rows), k)])
    out = near_dedup(ds, cfg).take_all()
    assert len(out) == len(rows) and sorted(r["id"] for r in out) == sorted(r["id"] for r in rows)
    assert set(out[0]) == set(schema.RECORD_SCHEMA.names)
    return {r["id"]: (r["reject_stage"], r["reject_reason"], r["duplicate_of"]) for r in out}


BROADCAST = DedupConfig(num_partitions=3)
SHUFFLED = DedupConfig(num_partitions=3, near={"broadcast_max_edges": 0})


@pytest.fixture(scope="module")
def reference(ray_local):
    rows, expect = _corpus()
    return rows, expect, _run(rows, 1, BROADCAST)


def test_planted_near_duplicates_found_with_smallest_survivor(reference):
    rows, expect, got = reference
    tagged = {i: v[2] for i, v in got.items() if v[1] == "near_duplicate"}
    assert tagged == expect
    assert all(got[i][0] == "dedup" for i in expect)
    assert got["n-5000"] == ("clean", "too_short", None)  # already rejected: untouched
    assert got["n-5001"] == got["p-0"] == got["n-5002"] == (None, None, None)  # other kinds, no tokens


@pytest.mark.parametrize("blocks", [4, 16])
def test_same_tags_whatever_the_partitioning(reference, blocks):
    rows, _, ref = reference
    shuffled = rows[:]
    random.Random(blocks).shuffle(shuffled)
    assert _run(shuffled, blocks, BROADCAST) == ref


@pytest.mark.parametrize("blocks", [1, 16])
def test_all_shuffle_path_gives_the_same_tags(reference, blocks):
    """broadcast_max_edges=0: verification by id shuffle, large/small-star rounds, final join shuffle."""
    rows, _, ref = reference
    shuffled = rows[:]
    random.Random(100 + blocks).shuffle(shuffled)
    assert _run(shuffled, blocks, SHUFFLED) == ref


def test_disabled_is_identity(ray_local):
    ds = ray.data.from_arrow(schema.records_from_rows([{"id": "a", "source": "s", "kind": "news", "text": "x"}]))
    assert near_dedup(ds, DedupConfig(near={"enabled": False})) is ds


def test_script_shingles_choose_characters_per_document():
    """Chinese paragraphs shingle by character 2-grams, English and German ones by word 5-grams, in one
    batch, each exactly as when shingled alone; 3% of characters deleted keeps Chinese Jaccard >= 0.8."""
    zh, de, en = _xquad("zh")[:10], _xquad("de")[:10], _ag_news()[:10]
    texts = [t for trio in zip(zh, de, en) for t in trio]
    cfg = NearDedupConfig()
    mixed = shingle_sets(pa.array(texts), cfg)
    alone = [shingle_sets(pa.array([t]), cfg)[0] for t in texts]
    assert all(np.array_equal(a, b) for a, b in zip(mixed, alone))
    assert [len(s) for s in mixed[0::3]] == [len(_ref_shingles(t, 2, chars=True)) for t in zh]
    assert [len(s) for s in mixed[1::3]] == [len(_ref_shingles(t, 5)) for t in de]
    rng = random.Random(3)
    edited = ["".join(c for c in t if rng.random() >= 0.03) for t in zh]
    sets = shingle_sets(pa.array(zh + edited), cfg)
    assert min(jaccard(sets[i], sets[i + 10]) for i in range(10)) >= 0.8
    assert max(jaccard(sets[i], sets[i + 1]) for i in range(9)) < 0.3  # different paragraphs stay apart
    full_width = "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in en[0])  # ＡＢＣ１２３
    assert np.array_equal(shingle_sets(pa.array([full_width]), cfg)[0], shingle_sets(pa.array([en[0]]), cfg)[0])


def test_chinese_and_japanese_near_duplicates_found_across_blocks(ray_local):
    """The Ray path: edited Chinese and Japanese copies (3% of characters deleted, or full-width
    digits and letters) are tagged near_duplicate of their originals whatever block they are in;
    the other paragraphs are kept."""
    zh = _xquad("zh")[:12]
    ja = (TEST_DATA / "lang" / "wmt22.ja-en.src.ja.txt").read_text("utf-8").splitlines()
    ja_docs = ["".join(ja[i : i + 10]) for i in range(0, 40, 10)]
    rng = random.Random(7)
    rows = [{"id": f"a{i:02d}", "source": "s", "kind": "web", "text": t} for i, t in enumerate(zh + ja_docs)]
    copies = {}
    for i, t in enumerate(zh[:4] + ja_docs[:2]):
        edited = "".join(c for c in t if rng.random() >= 0.03)
        copies[f"b{i:02d}"] = rows[i if i < 4 else 12 + i - 4]["id"]
        rows.append({"id": f"b{i:02d}", "source": "s", "kind": "web", "text": edited})
    wide = "".join(chr(ord(c) + 0xFEE0) if "0" <= c <= "9" or "A" <= c <= "z" else c for c in zh[5])
    rows.append({"id": "c00", "source": "s", "kind": "web", "text": wide})
    copies["c00"] = "a05"
    random.Random(1).shuffle(rows)
    got = _run(rows, 4, BROADCAST)
    assert {i: v[2] for i, v in got.items() if v[1] == "near_duplicate"} == copies


def test_a_hubs_docs_are_verified_in_spread_groups_with_the_rep_text_once_per_group(monkeypatch):
    """A bucket of 300 near-identical pages: its docs' texts split into up to REP_SPREAD groups (by a
    hash of the doc id), each group carrying the rep's text once; every verdict is as if verified
    together, on the shuffle path and the broadcast path alike."""
    from sft_ray.dedup import lsh

    page = " ".join(_ag_news()[:6])
    ids = [f"h-{i:04d}" for i in range(300)]
    texts = [page + f" Page {i} of the archive." for i in range(300)]
    edges = lsh._edges(ids[1:], [ids[0]] * 299)
    halves = lsh._attach_texts(pa.concat_tables([lsh._texts(pa.table({"id": ids, "text": texts})), lsh._requests(edges)]))
    groups = halves["near_spread"].to_numpy()
    is_rep = ~halves["near_side_is_doc"].to_numpy()
    assert len(set(groups[~is_rep])) == lsh.REP_SPREAD  # 299 docs over all 64 groups ...
    assert sorted(groups[is_rep]) == list(range(lsh.REP_SPREAD))  # ... and the rep's text once in each
    assert halves.num_rows == 299 + lsh.REP_SPREAD
    cfg = NearDedupConfig()
    together = lsh._score_stars(halves, cfg)
    apart = [lsh._score_stars(halves.filter(pa.array(groups == g)), cfg) for g in range(lsh.REP_SPREAD)]
    assert together.num_rows == 299 and sum(t.num_rows for t in apart) == 299
    assert sorted(pa.concat_tables(apart)[lsh.DOC].to_pylist()) == sorted(together[lsh.DOC].to_pylist()) == ids[1:]
    broadcast = lsh.EdgeIndex(edges)
    monkeypatch.setattr(lsh, "edge_index", lambda ref: broadcast)  # the broadcast edge list, without Ray
    same = lsh._involved_texts(pa.table({"id": ids, "text": texts}), None)
    key = ["near_doc", "near_rep", "near_spread", "near_side_is_doc"]
    assert same.select(key).sort_by([(k, "ascending") for k in key]).equals(halves.select(key).sort_by([(k, "ascending") for k in key]))


def test_verification_is_partitioned_by_the_texts_it_moves(reference):
    """verify_partitions sizes the (rep, group) shuffle from edges x mean text bytes (a hub makes that
    more than the records); many partitions there give the same tags as one."""
    from sft_ray.config import NearDedupConfig
    from sft_ray.dedup.near import TEXT_BYTES, band_keys, verify_partitions
    from sft_ray.dedup.removals import ROW

    rows, _, ref = reference
    records = schema.records_from_rows(rows)
    records = records.append_column(ROW, pa.array(range(records.num_rows), pa.int64()))
    keyed = ray.data.from_arrow(records).map_batches(
        band_keys, batch_format="pyarrow", fn_kwargs={"cfg": NearDedupConfig()}).materialize()
    text = {r["id"]: r.get("text") for r in rows}
    got = {r["id"]: r[TEXT_BYTES] for r in keyed.take_all()}
    assert got == {i: len(text[i].encode()) for i in got} and len(got) > 100
    lengths = list(got.values())
    mean = sum(lengths) // len(lengths)
    cfg = DedupConfig(partition_bytes=10 * mean, max_partitions=64)
    assert verify_partitions(1, keyed, cfg, 3) == 3  # never fewer than the build's
    assert verify_partitions(100, keyed, cfg, 3) == -(-(100 * sum(lengths) // len(lengths)) // cfg.partition_bytes) in (10, 11)
    assert verify_partitions(10_000, keyed, cfg, 3) == 64  # capped
    with_empty = ray.data.from_arrow([pa.concat_tables(ray.get(keyed.to_arrow_refs())), pa.table({})]).materialize()
    assert verify_partitions(100, with_empty, cfg, 3) == verify_partitions(100, keyed, cfg, 3)  # Ray Data's column-less empty blocks
    small = DedupConfig(num_partitions=3, partition_bytes=mean)  # one partition per ~text: many, same tags
    assert _run(rows, 4, small) == ref
