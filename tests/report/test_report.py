"""report/: aggregates on tiny tables, plots that decode, and report.html rendered in headless Chromium."""

from __future__ import annotations

import base64
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
    assert "<script>" not in page and "&lt;script&gt;alert(1)" in page and "bad&lt;1&gt;.csv" in page
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
