"""report/: aggregates on tiny tables, plots that decode, and report.html rendered in headless Chromium."""

from __future__ import annotations

import base64
import html
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pytest
import ray

from sft_ray import schema
from sft_ray.label.classifier import fit_head
from sft_ray.report import plots, record_counts, report_data, write_report
from sft_ray.report.aggregates import CHAR_EDGES, WORD_EDGES, combine, profile_block
from sft_ray.report.clusters import examples_block, members_block
from sft_ray.report.funnel import funnel
from sft_ray.report.quality import label_quality

SECTIONS = ["summary", "funnel", "lengths", "languages", "labels", "label-quality", "dedup", "pii", "sft"]


def _doc(i, text, **kw):
    return {schema.ID: f"s-{i}", schema.SOURCE: kw.pop("source", "news"), schema.KIND: kw.pop("kind", "news"), schema.TEXT: text, **kw}


def _records():
    """Two blocks: kept news with gold + predicted labels, a translation pair, and rejects of every kind."""
    a = [
        _doc(1, "Stocks rally as markets cheer rate cut", lang="en", label="Business", topic="Business", pii=json.dumps({"EMAIL": 2}),
             quality="good"),
        _doc(2, "Team wins the cup final after extra time", lang="en", label="Sports", topic="Sports"),
        _doc(3, "Team wins the cup final after extra time", lang="en", label="Sports", topic="Sports",
             reject_stage="dedup", reject_reason="exact_duplicate", duplicate_of="s-2"),
        _doc(4, "Team wins the cup final after extra time!", lang="en", reject_stage="dedup", reject_reason="near_duplicate", duplicate_of="s-2"),
        _doc(5, "tiny", lang="en", reject_stage="clean", reject_reason="too_short"),
        {schema.ID: "p-1", schema.SOURCE: "m30k", schema.KIND: "translation", schema.SRC_TEXT: "A dog runs.", schema.TGT_TEXT: "Ein Hund rennt.",
         schema.SRC_LANG: "en", schema.TGT_LANG: "de"},
    ]
    b = [
        _doc(6, "Team wins the cup final after extra time.", lang="en", reject_stage="dedup", reject_reason="near_duplicate", duplicate_of="s-2"),
        _doc(7, "Chip maker <b>beats</b> forecasts & shares jump", lang="en", label="Sci/Tech", topic="Business"),
        _doc(8, "Chip maker beats forecasts and shares jump", lang="en", reject_stage="dedup", reject_reason="semantic_duplicate", duplicate_of="s-7"),
        _doc(9, "Question from the eval set", lang="en", reject_stage="dedup", reject_reason="contaminated", duplicate_of="benchmark:x"),
        _doc(10, "Der Markt steigt heute deutlich an", lang="de", label="Business", topic="Business", quality="bad"),
        _doc(11, "A seed row of the topic head", lang="en", label="World", topic="World", label_flags="topic_seed"),
    ]
    return schema.records_from_rows(a), schema.records_from_rows(b)


def test_whitespace_words_equals_the_regex_kernel_it_replaces():
    """The vectorised word count gives exactly `count_substring_regex(r"\\S+")`: RE2's spaces only
    (not \\v, not Unicode spaces), multi-byte text, empty and null texts, sliced arrays, large strings."""
    import random

    from sft_ray.report.aggregates import whitespace_words

    rng = random.Random(1)
    alphabet = ["a", "bc", " ", "  ", "\t", "\n", "\r", "\f", "\v", "é", "語", "\u00a0", "\u3000", ""]
    for _ in range(200):
        texts = ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, 9))) for _ in range(rng.randint(1, 25))]
        texts = [None if rng.random() < 0.1 else t for t in texts]
        for arr in (pa.array(texts, pa.string()), pa.array(texts, pa.string()).slice(rng.randint(0, len(texts))), pa.array(texts, pa.large_string())):
            want = pa.compute.count_substring_regex(arr, r"\S+")
            got = whitespace_words(arr)
            assert got.type == want.type and got.to_pylist() == want.to_pylist(), texts


def test_profile_block_counts_kept_records_only():
    a, b = _records()
    d = combine(profile_block(a).to_pylist() + profile_block(b).to_pylist())
    text = d["lengths"]["chars"]["columns"][schema.TEXT]
    assert text["records"] == 5 and sum(text["counts"]) == 5 and len(text["counts"]) == len(CHAR_EDGES)
    words = d["lengths"]["words"]["columns"][schema.TEXT]
    assert words["mean"] == pytest.approx(np.mean([7, 8, 7, 6, 7]))  # whitespace words of the 5 kept texts
    assert words["counts"][WORD_EDGES.index(5)] == 5  # all in the 5-9 words bin
    assert d["lengths"]["chars"]["columns"][schema.SRC_TEXT]["records"] == 1
    assert d["languages"] == {"m30k": {"en→de": 1}, "news": {"en": 4, "de": 1}}
    assert d["labels"]["label"]["news"] == {"Business": 2, "Sci/Tech": 1, "Sports": 1, "World": 1}
    agree = d["gold_vs_predicted"]["topic"]["news"]  # the seed row is counted apart, not graded
    assert agree["records"] == 4 and agree["accuracy"] == 0.75 and agree["seed_rows_left_out"] == 1
    assert "World" not in agree["gold_labels"]
    assert agree["confusion"][agree["gold_labels"].index("Sci/Tech")][agree["predicted_labels"].index("Business")] == 1
    assert d["labels"]["quality"]["news"] == {"bad": 1, "good": 1} and "quality" not in d["gold_vs_predicted"]  # no gold for it


def test_cluster_blocks_name_survivor_and_members():
    a, b = _records()
    rows = members_block(a).to_pylist() + members_block(b).to_pylist()
    assert sorted((r["group"], r["reason"], r["n"]) for r in rows) == [
        ("s-2", "exact_duplicate", 1), ("s-2", "near_duplicate", 1), ("s-2", "near_duplicate", 1), ("s-7", "semantic_duplicate", 1)]
    ex = examples_block(a, ["s-2"], examples=1).to_pylist()
    assert [(r["role"], r["id"]) for r in ex] == [("survivor", "s-2"), ("removed", "s-3")]


def test_funnel_ends_at_kept():
    counts = {"input": 10, "kept": 4, "by_stage": {"dedup": {"exact_duplicate": 3}, "clean": {"too_short": 2}, "zeta": {"x": 1}}}
    f = funnel(counts, {"generated": 8, "removed": {"duplicate_example": 2}})
    assert [(s["stage"], s["remaining"]) for s in f["records"]] == [("input", 10), ("clean", 8), ("dedup", 5), ("zeta", 4)]
    assert f["sft"][-1]["remaining"] == 6


def test_fit_head_reports_held_out_precision_recall_and_confusion():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1, 2], 20)
    x = rng.normal(size=(60, 8)) + np.eye(3, 8)[y] * 3
    info = fit_head(x, y, ["a", "b", "c"], folds=4, l2=1.0).info
    conf = np.array(info["cv_confusion"])
    assert conf.shape == (3, 3) and conf.sum() == 60 and conf.sum(1).tolist() == [20, 20, 20]
    assert np.trace(conf) / 60 == pytest.approx(info["cv_accuracy"], abs=1e-4)
    for c, m in info["cv_per_class"].items():
        k = ["a", "b", "c"].index(c)
        assert m["recall"] == pytest.approx(conf[k, k] / 20, abs=1e-4) and m["support"] == 20
        assert m["precision"] == pytest.approx(conf[k, k] / conf[:, k].sum(), abs=1e-4)
    q = label_quality({"topic": info, "no_cv": {"rows": 3}})
    assert list(q) == ["topic"] and q["topic"]["labels"] == ["a", "b", "c"]


def test_histogram_bin_labels():
    assert [plots._bin_label(CHAR_EDGES, i) for i in (0, 1, 3, 9, 10, len(CHAR_EDGES) - 1)] == ["0", "1", "5–9", "500–999", "1k–2k", "1M+"]


def test_plots_are_decodable_pngs():
    from PIL import Image

    tags = [plots.hbar({"a": 3, "b<&>": 1}, "t"), plots.stacked_hbar({"clean": {"x": 1, "y": 2}}, "s"),
            plots.histogram(CHAR_EDGES, {"text": [0, 1, 5] + [0] * (len(CHAR_EDGES) - 3)}, "h", "chars"),
            plots.confusion(["a", "b"], ["a", "b"], [[3, 1], [0, 4]], "c")]
    for tag in tags:
        img = Image.open(io.BytesIO(base64.b64decode(re.search(r'base64,([^"]+)"', tag).group(1))))
        img.load()
        assert img.format == "PNG" and img.size[0] > 100 and img.size[1] > 50


@pytest.fixture(scope="module")
def report(ray_local, tmp_path_factory):
    import ray

    a, b = _records()
    ds = ray.data.from_arrow([a, b]).materialize()
    rng = np.random.default_rng(1)
    y = np.repeat([0, 1], 10)
    head_info = fit_head(rng.normal(size=(20, 4)) + y[:, None], y, ["negative", "positive"], folds=2, l2=1.0).info
    manifest_like = {
        "output": str(tmp_path_factory.mktemp("rep")), "counts": record_counts(ds), "label": {"sentiment": head_info},
        "sft": {"generated": 5, "train": 3, "validation": 1, "removed": {"duplicate_example": 1},
                "by_task": {"classification": {"train": 3, "validation": 1, "duplicate_example": 1}}},
        "unreadable_files": [{"source": "news", "file": "bad<1>.csv", "error": "broken & gone"}], "warnings": ["source x: <no> records"],
        "samples": [{"task": "classification", "id": "ex-1", "messages": [
            {"role": "user", "content": "Topic of: <script>alert(1)</script>?"}, {"role": "assistant", "content": "Business"}]}],
    }
    full = write_report(manifest_like["output"], {**manifest_like, **report_data(ds)})
    return manifest_like["output"], full


def test_report_json_has_the_numbers(report):
    out, full = report
    saved = json.loads(open(f"{out}/report/report.json").read())
    assert saved["funnel"]["records"][-1]["remaining"] == saved["counts"]["kept"] == 6
    c = saved["dedup_clusters"]
    assert c["clusters"] == 2 and c["removed"] == {"exact_duplicate": 1, "near_duplicate": 2, "semantic_duplicate": 1}
    top = c["largest"][0]
    assert top["survivor_id"] == "s-2" and top["size"] == 4 and top["survivor"]["text"].startswith("Team wins")
    assert [x["id"] for x in top["removed_examples"]] == ["s-3", "s-4"]
    assert sum(c["size_counts"]) == 2
    assert saved["label_quality"]["sentiment"]["confusion"] and saved["data"]["languages"]["news"]["en"] == 4


class _Checker(HTMLParser):
    """Tags balance (void elements aside) and no element points outside the page."""

    VOID = {"meta", "img", "br", "hr", "link", "input"}

    def __init__(self):
        super().__init__()
        self.stack, self.errors, self.imgs = [], [], 0

    def handle_starttag(self, tag, attrs):
        for k, v in attrs:
            if k in ("src", "href") and v and not (v.startswith("data:image/png;base64,") or v.startswith("#")):
                self.errors.append(f"external {k}: {v[:60]}")
        self.imgs += tag == "img"
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if not self.stack or self.stack.pop() != tag:
            self.errors.append(f"unbalanced </{tag}>")


def test_html_is_self_contained_escaped_and_balanced(report):
    out, _ = report
    page = open(f"{out}/report/report.html", encoding="utf-8").read()
    chk = _Checker()
    chk.feed(page)
    assert chk.errors == [] and chk.stack == []
    # Data is escaped: the page's one script is its own sample-table code, never a record's text.
    assert page.count("<script") == 1 and "alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)" in page and "bad&lt;1&gt;.csv" in page
    assert all(f'id="{s}"' in page for s in SECTIONS)
    assert "none of them a seed row of the head; agreement 75.0%" in page and "1 kept records that are seed rows" in page


@pytest.mark.slow
def test_report_renders_in_headless_chromium(report, tmp_path):
    """Debian's chromium (installed by ./dev) loads the page: every section and plot in the DOM, no console message."""
    from PIL import Image

    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium not found: install Debian's chromium (./dev setup does it as root: apt-get install chromium)"
    out, _ = report
    url = f"file://{out}/report/report.html"
    flags = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*flags, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    console = [line for line in dom.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
    assert console == [], console
    page = open(f"{out}/report/report.html", encoding="utf-8").read()
    for s in SECTIONS:
        assert f'id="{s}"' in dom.stdout, s
    n_img = dom.stdout.count("<img ")
    assert n_img == page.count("<img ") >= 8
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', dom.stdout):
        Image.open(io.BytesIO(base64.b64decode(b64))).load()
    shot = tmp_path / "shot.png"
    run = subprocess.run([*flags, "--window-size=1200,2400", f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.exists(), run.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("L"))
    assert img.shape == (2400, 1200) and img.std() > 10  # text and plots, not a blank page


def test_no_duplicates_gives_no_clusters(ray_local):
    import ray

    from sft_ray.report import dedup_clusters

    a, _ = _records()
    kept_only = a.filter(pa.compute.is_null(a[schema.REJECT_REASON]))
    c = dedup_clusters(ray.data.from_arrow([kept_only]))
    assert c["clusters"] == 0 and c["largest"] == [] and c["removed"] == {}


def test_clusters_from_member_rows_on_the_driver_equal_the_shuffled_ones(ray_local):
    """write.py keeps few member rows on the driver and the report sums them there; many stay a
    Dataset and are shuffled by survivor. Both give the same clusters, sizes and examples."""
    import ray

    from sft_ray.report.clusters import clusters_from, members_block

    a, b = _records()
    records = ray.data.from_arrow([a, b])
    table = pa.concat_tables([members_block(a), members_block(b)])
    local = clusters_from(table, records, 5, 2, 2)
    shuffled = clusters_from(ray.data.from_arrow([members_block(a), members_block(b)]), records, 5, 2, 2)
    assert local == shuffled
    assert local["clusters"] == 2 and [c["size"] for c in local["largest"]] == [4, 2]  # s-2 + 3 removed, s-7 + 1
    assert local["removed"] == {"exact_duplicate": 1, "near_duplicate": 2, "semantic_duplicate": 1}


def test_sft_token_histogram_counts_kept_examples_per_split(ray_local):
    """The report's tokens histogram: one count per kept SFT example in the bin of its token length
    (whitespace words here: no tokenizer path), per split; removed examples are not counted."""
    from sft_ray.report.counts import TOKEN_EDGES, sft_counts

    def ex(i, split, words, reason=None):
        return {"id": f"e{i}", "task": "qa", "source": "s", "split": split, "reject_reason": reason,
                "messages": [{"role": "user", "content": " ".join(["w"] * words)}, {"role": "assistant", "content": "a"}]}

    rows = [ex(1, "train", 1), ex(2, "train", 5), ex(3, "train", 19), ex(4, "validation", 4), ex(5, "train", 30, "duplicate_example")]
    summary, _ = sft_counts(ray.data.from_items(rows), (None, "whitespace words"))
    h = summary["tokens"]["hist"]
    assert h["edges"] == TOKEN_EDGES
    bin_of = {n: max(i for i, e in enumerate(TOKEN_EDGES) if e <= n) for n in (2, 6, 20, 5)}  # words + the answer's one
    train = h["columns"]["train"]
    assert train["records"] == 3 and sum(train["counts"]) == 3
    assert len({bin_of[2], bin_of[6], bin_of[20]}) == 3
    assert train["counts"][bin_of[2]] == train["counts"][bin_of[6]] == train["counts"][bin_of[20]] == 1
    assert train["mean"] == round((2 + 6 + 20) / 3, 2)
    assert h["columns"]["validation"]["counts"][bin_of[5]] == 1
    from sft_ray.report.html import _lengths

    html = _lengths({"sft": summary, "lengths": {"chars": {"edges": CHAR_EDGES, "columns": {}}, "words": {"edges": WORD_EDGES, "columns": {}}}})
    assert "Tokens per SFT example: whitespace words" in html


# ---- The data engineer's report: samples, filter scores, per-source funnel, SFT balance, browsing ----

NEW_SECTIONS = ["sources", "percentiles", "filters", "rejects", "normalization", "samples"]
_SENTENCES = ["The council approved the new budget for the city library on Monday.",
              "Residents said that the plan would have a large effect on the schools.",
              "Officials expect the work to be finished before the end of the year.",
              "The report was published with details of the costs and the timetable.",
              "Several groups asked to be consulted before any final decision is made.",
              "A spokesperson confirmed that the project is funded by a national grant."]


def _page(i: int, n: int) -> str:
    """A web page of `n` sentences, three to a line (passes Gopher quality and repetition, C4 and FineWeb)."""
    tag = lambda k: "".join(chr(97 + int(d)) for d in f"{i:03d}{k:03d}")  # noqa: E731 - unique words made of letters
    s = [f"{_SENTENCES[(i + k) % len(_SENTENCES)][:-1]} in zone {tag(k)}." for k in range(n)]
    return "\n".join(" ".join(s[k:k + 3]) for k in range(0, n, 3))


def _web_records() -> list[pa.Table]:
    """Web pages of two sources in three blocks: kept, and rejected by clean filters (as the clean stage
    tags them: stage clean, the filter's reason), by length, by dedup; one contaminated."""
    blocks = []
    for b in range(3):
        rows = []
        for i in range(b * 20, b * 20 + 20):
            src = "crawl-a" if i % 2 else "crawl-b"
            kw = {"source": src, "kind": "web", "lang": "en", "lang_score": 0.9 + (i % 10) / 100}
            if i % 10 == 3:
                rows.append(_doc(i, " ".join(["word"] * 12), reject_stage="clean", reject_reason="gopher_short_doc", **kw))
            elif i % 10 == 5:
                rows.append(_doc(i, "\n".join(["Buy now and save."] * 30), reject_stage="clean", reject_reason="gopher_repetition_dup_para_frac", **kw))
            elif i % 10 == 7:
                rows.append(_doc(i, "menu\nhome\nabout us\ncontact", reject_stage="clean", reject_reason="too_short", **kw))
            elif i % 10 == 9:
                rows.append(_doc(i, _page(i - 1, 12), reject_stage="dedup", reject_reason="near_duplicate", duplicate_of=f"s-{i - 1}", **kw))
            elif i == 44:
                rows.append(_doc(i, _page(i, 12), reject_stage="dedup", reject_reason="contaminated", duplicate_of="bench:y", **kw))
            else:
                rows.append(_doc(i, _page(i, 9 + i % 7), **kw))
        blocks.append(_as_cleaned(schema.records_from_rows(rows)))
    return blocks


def _as_cleaned(table: pa.Table) -> pa.Table:
    """`table` as the clean stage leaves it: every third kept page is given raw-text faults that
    normalisation repairs back to the same text (a sharing line, double spaces, a zero-width space,
    a CRLF), so the records carry what normalisation changed (clean/changes.py)."""
    from sft_ray.clean.normalize import normalize_batch
    from sft_ray.config import CleanConfig

    texts = table[schema.TEXT].to_pylist()
    live = [r is None for r in table[schema.REJECT_REASON].to_pylist()]
    raw = [("Share on Facebook\n" if k % 4 == 0 else "") + t.replace(". ", ".  ", 2).replace("the ", "the\u200b ", 1).replace("\n", "\r\n", 1)
           if ok and k % 3 == 0 else t for k, (t, ok) in enumerate(zip(texts, live))]
    out = normalize_batch(table.set_column(table.schema.get_field_index(schema.TEXT), schema.TEXT, pa.array(raw, pa.string())),
                          CleanConfig(min_chars=1))
    assert out[schema.TEXT].to_pylist() == texts and out[schema.REJECT_REASON].to_pylist() == table[schema.REJECT_REASON].to_pylist()
    return out


def test_filter_statistics_agree_with_the_filters():
    """report/scores.py recomputes what the clean filters compare: on texts each filter passes or
    rejects, the statistic crosses the default threshold exactly when the filter gives that reason."""
    from sft_ray.clean import fineweb, gopher_quality, gopher_repetition
    from sft_ray.config import CleanConfig
    from sft_ray.report.scores import doc_scores, link_of

    cfg = CleanConfig()
    page, short, repeated = _page(1, 30), " ".join(["word"] * 12), "\n".join(["Buy now and save."] * 30)
    for text in (page, short, repeated):
        s = doc_scores(text)
        assert "_error" not in s
        assert (gopher_quality.reason(text, cfg.gopher_quality) == "gopher_short_doc") == (s["non_symbol_words"] < cfg.gopher_quality.min_doc_words)
        assert (gopher_repetition.reason(text, cfg.gopher_repetition) == "gopher_repetition_dup_para_frac") == (
            s["dup_para_frac"] > cfg.gopher_repetition.dup_para_frac)
    assert gopher_quality.reason(page, cfg.gopher_quality) is None and fineweb.reason(page, cfg.fineweb) is None
    s = doc_scores(page)
    assert s["char_dup_ratio"] == 0 and doc_scores(repeated)["char_dup_ratio"] > cfg.fineweb.char_duplicates_ratio
    assert fineweb.reason(repeated, cfg.fineweb) == "fineweb_short_line_ratio"  # its first failing check
    assert doc_scores(repeated)["short_line_ratio"] > cfg.fineweb.short_line_thr >= s["short_line_ratio"]
    assert s["line_punct_ratio"] == 1.0 and s["stop_words"] >= 2 and s["sentences"] == 30
    assert [link_of(r) for r in ("gopher_repetition_top_2_gram", "gopher_short_doc", "c4_curly_bracket", "too_long", "no_main_content")] == [
        "gopher_repetition", "gopher_quality", "c4", "length", None]


def test_sample_is_a_bounded_deterministic_bottom_k(monkeypatch):
    """Each block sends at most PER_BLOCK records per stratum; the merged sample is the global bottom-k
    by id hash (the same as sampling all records at once), and the same on every run."""
    from sft_ray.report import sample

    monkeypatch.setattr(sample, "PER_BLOCK", 4)
    monkeypatch.setattr(sample, "SAMPLE_SIZE", 6)
    blocks = _web_records()
    rows = [r for b in blocks for r in profile_block(b).to_pylist()]
    per_block = [[r for r in profile_block(b).to_pylist() if r["what"] == "sample" and r["key"] == "kept"] for b in blocks]
    assert all(len(p) == 4 for p in per_block)
    d = combine(rows)
    assert d == combine(rows[::-1])  # order of blocks does not matter
    kept = d["sample"]["records"]["kept"]
    all_kept = pa.concat_tables(blocks).filter(pa.compute.is_null(pa.concat_tables(blocks)[schema.REJECT_REASON]))
    ids = np.asarray(all_kept[schema.ID].to_pylist())
    assert [r["id"] for r in kept] == ids[np.argsort(sample.ranks(all_kept[schema.ID]), kind="stable")[:6]].tolist()
    rejects = d["rejects_sample"]
    assert set(rejects["clean"]) == {"gopher_short_doc", "gopher_repetition_dup_para_frac", "too_short"}
    assert all(len(v) == 3 for v in rejects["clean"].values()) and len(rejects["dedup"]["contaminated"]) == 1
    assert d["percentiles"]["all"]["chars"]["n"] == 6 and d["percentiles"]["all"]["chars"]["p1"] <= d["percentiles"]["all"]["chars"]["p99"]


def test_filter_scores_split_records_by_the_link_that_judged_them():
    """A gopher_short_doc reject is `rejected` for Gopher quality; a too_short one reached no Gopher
    filter; a Gopher repetition reject passed Gopher quality (an earlier link); kept records passed all."""
    from sft_ray.config import CleanConfig
    from sft_ray.report.filters import filter_scores

    d = combine([r for b in _web_records() for r in profile_block(b).to_pylist()])
    fs = filter_scores(d["sample"], CleanConfig().model_dump(mode="json"))
    assert fs["errors"] == []
    gq, gr = fs["filters"]["gopher_quality"], fs["filters"]["gopher_repetition"]
    n_kept, n_later = len(d["sample"]["records"]["kept"]), len(d["sample"]["records"]["later"])
    assert gq["rejected"] == 6 and gq["passed"] == n_kept + n_later + 6  # + the six repetition rejects
    assert gr["rejected"] == 6 and gr["passed"] == n_kept + n_later
    words = gq["stats"]["non_symbol_words"]
    assert [t["value"] for t in words["thresholds"]] == [50, 100_000] and sum(words["rejected_counts"]) == 6
    assert words["rejected_percentiles"]["p99"] < 50 <= words["passed_percentiles"]["p1"]
    assert fs["filters"]["langid"]["stats"]["lang_score"]["thresholds"][0]["value"] == 0.65
    off = filter_scores(d["sample"], CleanConfig(gopher_quality={"enabled": False}).model_dump(mode="json"))
    assert "gopher_quality" not in off["filters"]
    assert filter_scores(d["sample"], CleanConfig(enabled=False).model_dump(mode="json"))["filters"] == {}  # no filter ran


def test_funnel_per_source_splits_out_decontamination_and_sft_steps():
    from sft_ray.report.counts import count_groups, record_groups

    counts = count_groups([r for b in _web_records() for r in record_groups(b).to_pylist()])
    f = funnel(counts, {"generated": 10, "removed": {"task_mix": 1, "duplicate_example": 2}})
    assert [s["stage"] for s in f["records"]] == ["input", "clean", "dedup", "decontaminate"]
    assert f["records"][-1]["remaining"] == counts["kept"] == 60 - 24 - 1
    for src, steps in f["by_source"].items():
        assert steps[0]["remaining"] == counts["by_source"][src]["input"] and steps[-1]["remaining"] == counts["by_source"][src]["kept"]
    assert [(s["stage"], s["removed"]) for s in f["sft"]] == [("generated", 0), ("format", 1), ("sft_dedup", 2)]


def test_sft_label_balance_and_prompt_response_lengths(ray_local):
    from sft_ray.report.counts import sft_counts

    def ex(i, task, answer, reason=None):
        return {"id": f"e{i}", "task": task, "source": "s", "split": "train" if i % 3 else "validation", "reject_reason": reason,
                "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": " ".join(["w"] * (5 + i))},
                             {"role": "assistant", "content": answer}]}

    rows = [ex(i, "classification", ["Sports", "World"][i % 2]) for i in range(9)] + [ex(9, "qa", "an answer here"),
                                                                                      ex(10, "classification", "Sports", "duplicate_example")]
    summary, _ = sft_counts(ray.data.from_items(rows), (None, "whitespace words"))
    assert summary["label_balance"] == {"classification": {"train": {"Sports": 3, "World": 3}, "validation": {"Sports": 2, "World": 1}}}
    pr = summary["prompt_response"]
    assert pr["sampled"] == 10 and pr["all"]["response"]["p50"] == 1 and pr["by_task"]["qa"]["response"]["p1"] == 3
    assert pr["all"]["prompt"]["p1"] == pytest.approx(2 + 5 + 0.09, abs=0.01)  # "be brief" + 5 words, interpolated
    assert pr["by_task"]["qa"]["example"]["p50"] == 2 + 14 + 3  # whitespace words of every message (no tokenizer)
    assert summary["removed_by_source"] == {"s": {"duplicate_example": 1}}


@pytest.fixture(scope="module")
def web_report(ray_local, tmp_path_factory):
    """A report of web pages: every new section has content (clean filters apply to `web`)."""
    import ray

    from sft_ray.report.counts import sft_counts

    ds = ray.data.from_arrow(_web_records()).materialize()
    out = str(tmp_path_factory.mktemp("web"))
    rows = [{"id": f"e{i}", "task": "classification" if i % 2 else "headline", "source": "crawl-a", "split": "train" if i % 4 else "validation",
             "reject_reason": None, "messages": [{"role": "user", "content": _page(i, 1 + i % 5)},
                                                 {"role": "assistant", "content": ["Local", "Politics"][i % 2 and (i // 2) % 2]}]}
            for i in range(24)]
    sft, samples = sft_counts(ray.data.from_arrow(pa.Table.from_pylist(rows)), (None, "whitespace words"))  # one block: fewer tasks
    full = write_report(out, {"output": out, "counts": record_counts(ds), "label": {}, "sft": sft, "unreadable_files": [], "warnings": [],
                              "samples": samples, "config": {"clean": {**_clean_dict(), "min_chars": 30}}, **report_data(ds, num_partitions=2)})
    return out, full


def _clean_dict() -> dict:
    from sft_ray.config import CleanConfig

    return CleanConfig().model_dump(mode="json")


def test_report_thresholds_come_from_the_build_config(web_report):
    _, full = web_report
    length = full["filter_scores"]["filters"]["length"]["stats"]["chars"]["thresholds"]
    assert length[0] == {"field": "min_chars", "side": "min", "value": 30}
    saved = json.loads(open(f"{web_report[0]}/report/report.json").read())
    assert set(saved["filter_scores"]["filters"]) >= {"length", "langid", "gopher_quality", "gopher_repetition", "c4", "fineweb"}
    assert saved["sft"]["label_balance"]["classification"]["train"] and saved["data"]["sample"]["records"]["kept"]


def _chromium(tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    assert exe, "chromium not found: install Debian's chromium (./dev setup does it as root: apt-get install chromium)"
    return [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}"]


def _section_pages(page: str, out_dir) -> dict[str, str]:
    """One page per section: the report's head, that section alone and the script (a screenshot of
    each section, whatever its place in the long page)."""
    head, rest = page.split("<nav>", 1)
    script = page[page.index("<script id=browse-js>"):page.index("</script>") + len("</script>")]
    pages = {}
    for sid in re.findall(r'<section id="([^"]+)">', page):
        start = page.index(f'<section id="{sid}">')
        body = page[start:page.index("</section>", start) + len("</section>")]
        path = out_dir / f"section-{sid}.html"
        path.write_text(f"{head}{body}\n{script}\n</body></html>\n", encoding="utf-8")
        pages[sid] = str(path)
    return pages


@pytest.mark.slow
def test_new_report_sections_render_in_headless_chromium(web_report, tmp_path):
    """Every section of the web report renders on its own: a screenshot with text and plots, no console
    message; the new sections have content; the sample table sorts and filters in the browser."""
    from PIL import Image

    flags = _chromium(tmp_path)
    out, _ = web_report
    page = open(f"{out}/report/report.html", encoding="utf-8").read()
    chk = _Checker()
    chk.feed(page)
    assert chk.errors == [] and chk.stack == []
    pages = _section_pages(page, tmp_path)
    assert set(NEW_SECTIONS) <= set(pages)
    seen = {}
    for sid, path in pages.items():
        shot = tmp_path / f"{sid}.png"
        run = subprocess.run([*flags, "--window-size=1000,900", f"--screenshot={shot}", f"file://{path}"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0 and shot.exists(), (sid, run.stderr[-2000:])
        console = [line for line in run.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]
        assert console == [], (sid, console)
        img = np.asarray(Image.open(shot).convert("L"))
        # text and plots, not a blank page; the new sections well filled (a section saying "none" is not)
        assert img.std() > 10 and (img < 128).mean() > (0.01 if sid in NEW_SECTIONS else 0.002), sid
        seen[sid] = img.tobytes()
    assert len(set(seen.values())) == len(seen)  # each screenshot shows its own section
    sec = {sid: open(p, encoding="utf-8").read() for sid, p in pages.items()}
    assert sec["filters"].count("<img ") >= 10 and "gopher_quality: non_symbol_words" in sec["filters"]
    assert sec["rejects"].count("class=msg") >= 7 and "gopher_repetition_dup_para_frac" in sec["rejects"]
    assert "crawl-a" in sec["sources"] and "crawl-b" in sec["sources"] and sec["sources"].count("<img ") == 1
    assert "p99" in sec["percentiles"] and "prompt" in sec["percentiles"]
    norm = sec["normalization"]
    assert "<del>Share on Facebook↵" in norm and "<del>⟨ZWSP⟩</del>" in norm and "<del>⟨CR⟩</del>" in norm
    assert all(f"<td>{step}</td>" in norm for step in ("boilerplate", "control", "whitespace"))
    assert "Label balance of the SFT set" in sec["sft"] and "Prompt vs response" in sec["lengths"] and "Tokens per SFT example" in sec["lengths"]

    # The sample table in the browser: sorted by chars (descending), filtered by a search and a state.
    def dom(fragment: str) -> list[tuple[str, float, bool]]:
        run = subprocess.run([*flags, "--dump-dom", f"file://{out}/report/report.html#{fragment}"], capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr[-2000:]
        assert [ln for ln in run.stderr.splitlines() if ":CONSOLE" in ln or "Uncaught" in ln] == []
        table = run.stdout[run.stdout.index('id="sample-table"'):]
        body = table[table.index("<tbody>"):table.index("</tbody>")]
        rows = []
        for tr in body.split("<tr ")[1:]:
            state, style = re.match(r'data-state="([^"]*)"(?: style="([^"]*)")?>', tr).groups()
            chars = re.search(r'<td class="n" data-v="([^"]*)">[^<]*</td><td class="n" data-v', tr).group(1)  # chars, then words
            rows.append((html.unescape(state), float(chars), "none" not in (style or "")))
        return rows

    cols = [k for k, _, _ in __import__("sft_ray.report.html", fromlist=["_BROWSE_COLUMNS"])._BROWSE_COLUMNS]
    assert cols[cols.index("chars") + 1] == "words"  # the regex reads the chars cell: the one before words
    rows = dom("samples?sort=chars&desc=1")
    assert len(rows) == sum(len(v) for v in web_report[1]["data"]["sample"]["records"].values())
    chars = [c for _, c, _ in rows]
    assert chars == sorted(chars, reverse=True) and all(shown for *_, shown in rows)
    rows = dom("samples?sort=chars&state=clean: too_short")
    shown = [(s, c) for s, c, ok in rows if ok]
    assert shown and all(s == "clean: too_short" for s, _ in shown) and len(shown) < len(rows)
    assert [c for _, c, _ in rows] == sorted(c for _, c, _ in rows)
    rows = dom("samples?q=buy now")
    assert {s for s, _, ok in rows if ok} == {"clean: gopher_repetition_dup_para_frac"}
