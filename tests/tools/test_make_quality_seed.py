"""The quality labeler's seed (tools/make_quality_seed.py): blocks from the gold of real web pages,
split by page, and the shipped files are what the tool derives."""

from __future__ import annotations

import json

from tests.conftest import DEMO_DATA
from tools import make_quality_seed as derive

HELD_OUT_PAGES = ("wapo-1", "theverge", "lwn-1")  # English Readability pages in web_quality_heldout.jsonl


def _jsonl(name: str) -> list[dict]:
    return [json.loads(line) for line in (DEMO_DATA / name).read_text("utf-8").splitlines()]


def test_seed_blocks_come_from_the_gold_of_real_pages():
    cnn = derive.readability_page(derive.WEB / "readability_test_pages" / "cnn")
    assert any("Stanford University's Center on Poverty and Inequality" in b for b in cnn["good"])
    assert any("All Rights Reserved" in b for b in cnn["bad"])
    assert any("Economy\nTech\nPersonal Finance" in b for b in cnn["bad"])  # a menu run becomes one block
    assert not set(cnn["good"]) & set(cnn["bad"])
    assert all(len(b) <= derive.MAX_BLOCK_CHARS or "\n" not in b for b in cnn["good"] + cnn["bad"])
    axios = next(a for a in map(json.loads, (derive.WEB / "trafilatura_pages" / "annotations.jsonl").read_text().splitlines())
                 if "axios" in a["file"])
    page = derive.trafilatura_page(axios)
    assert page["bad"] == ["Axios newsletters", "Online tracking choices", "Axios podcasts"]
    # The whole line holding a snippet, not the snippet: this one starts mid-sentence in the gold.
    assert any(b.startswith("Take rapper Kendrick Lamar.") and "the 5th song starts 19 " in b for b in page["good"])


def test_shipped_seed_is_reproducible_and_split_by_page():
    seed, held = _jsonl("web_quality_seed.jsonl"), _jsonl("web_quality_heldout.jsonl")
    assert derive.dumps(seed) + derive.dumps(held) == "".join(derive.dumps(r) for r in derive.rows(derive.pages()))
    pages = {side: {(r["corpus"], r["page"]) for r in rows} for side, rows in (("seed", seed), ("held", held))}
    assert not pages["seed"] & pages["held"] and len(pages["seed"] | pages["held"]) == 71  # 45 + 26 gold pages
    for rows in (seed, held):
        assert {r["label"] for r in rows} == {"good", "bad"} and {r["corpus"] for r in rows} == {"trafilatura", "readability"}
    assert {p for _, p in pages["held"]} >= set(HELD_OUT_PAGES)
