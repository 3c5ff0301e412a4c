"""What normalisation changed: step masks, diffs, the bounded sample and its way into the report."""

from __future__ import annotations

import json

from sft_ray import schema
from sft_ray.clean.changes import PER_BLOCK, SAMPLE_COLUMN, STEPS_COLUMN, diff_spans, steps_of
from sft_ray.clean.normalize import clean_text_steps, normalize_batch
from sft_ray.config import CleanConfig


def _steps(text: str, kind: str = "text") -> tuple[str, list[str]]:
    out, mask = clean_text_steps(text, kind, CleanConfig())
    return out, steps_of(mask)


def test_each_step_is_named_when_it_changes_the_text():
    assert _steps("The Mona Lisa doesnÃ¢â‚¬â„¢t have eyebrows.") == ("The Mona Lisa doesn\u2019t have eyebrows.", ["mojibake"])
    assert _steps("a <b>bold</b> word") == ("a bold word", ["markup", "whitespace"])
    assert _steps("NUL\x00byte") == ("NUL byte", ["control"])
    assert _steps("Cafe\u0301") == ("Caf\u00e9", ["nfc"])
    assert _steps("a  b\r\nc") == ("a b\nc", ["whitespace"])
    assert _steps("Share on Facebook\nThe real content of the page.", "web") == ("The real content of the page.", ["boilerplate"])
    assert _steps("Nothing to do here.") == ("Nothing to do here.", [])


def test_diff_keeps_changes_with_context_only():
    assert diff_spans("doesnÃ¢â‚¬â„¢t", "doesn\u2019t") == [["=", "doesn"], ["-", "Ã¢â‚¬â„¢"], ["+", "\u2019"], ["=", "t"]]
    long = "x" * 200 + " a  b " + "y" * 200
    d = diff_spans(long, long.replace("  ", " "))
    assert [op for op, _ in d] == ["=", "-", "="] and d[1] == ["-", " "]
    assert d[0][1].startswith("…x") and len(d[0][1]) == 41 and d[2][1].endswith("y…") and len(d[2][1]) == 41
    assert sum(len(t) for _, t in d) < 100  # a long page keeps its changes, not its text
    many = " ".join(f"w{i}  x" for i in range(20))
    assert sum(op == "-" for op, _ in diff_spans(many, many.replace("  ", " "))) == 4  # MAX_SPANS, then " … "


def test_batch_masks_every_row_and_samples_a_bounded_few():
    rows = [{"id": f"r{i}", "source": "s", "kind": "text", "text": f"row {i}  with  double spaces and more words"} for i in range(30)]
    rows += [{"id": "clean", "source": "s", "kind": "text", "text": "A row that needs nothing at all."},
             {"id": "pair", "source": "s", "kind": "translation", "src_text": "Ein  Haus", "tgt_text": "A house"},
             {"id": "gone", "source": "s", "kind": "text", "text": "x  y", "reject_stage": "ingest", "reject_reason": "malformed_json"}]
    out = normalize_batch(schema.records_from_rows(rows), CleanConfig(min_chars=3)).to_pylist()
    masks = {r["id"]: r[STEPS_COLUMN] for r in out}
    assert steps_of(masks["r0"]) == ["whitespace"] and masks["clean"] is None and masks["gone"] is None  # a reject is not normalised
    assert steps_of(masks["pair"]) == ["whitespace"] and out[31]["src_text"] == "Ein Haus"
    sampled = [json.loads(r[SAMPLE_COLUMN]) for r in out if r[SAMPLE_COLUMN]]
    assert len(sampled) == PER_BLOCK  # one step changed anything: PER_BLOCK diffs for it
    assert all(s["steps"] == ["whitespace"] and ["-", " "] in s["diff"] for s in sampled)
    again = normalize_batch(schema.records_from_rows(rows), CleanConfig(min_chars=3))
    assert again[SAMPLE_COLUMN].to_pylist() == [r[SAMPLE_COLUMN] for r in out]  # deterministic: by id hash


def test_normalize_off_leaves_the_trace_empty():
    t = normalize_batch(schema.records_from_rows([{"id": "a", "source": "s", "kind": "text", "text": "a  b c d e f g"}]),
                        CleanConfig(normalize=False, min_chars=1))
    assert t[STEPS_COLUMN].to_pylist() == [None] and t[SAMPLE_COLUMN].to_pylist() == [None]


def test_profile_counts_steps_per_source_and_renders_the_diffs():
    from sft_ray.report.aggregates import Profile, profile_block
    from sft_ray.report.normalization import render

    rows = [{"id": f"{src}{i}", "source": src, "kind": "text", "text": text}
            for src in ("a", "b") for i, text in enumerate(["x <b>bold</b> y here", "Caf\u0065\u0301 noir here", "ok text here", "ok  text here"])]
    blocks = [normalize_batch(schema.records_from_rows(rows[:4]), CleanConfig(min_chars=1)),
              normalize_batch(schema.records_from_rows(rows[4:]), CleanConfig(min_chars=1))]
    norm = Profile().add(profile_block(blocks[0]).to_pylist()).add(profile_block(blocks[1]).to_pylist()).result()["normalization"]
    assert norm["records"] == 8 and norm["records_by_source"] == {"a": 4, "b": 4}
    steps = norm["steps"]
    assert steps["markup"]["records"] == 2 and steps["markup"]["by_source"] == {"a": 1, "b": 1}
    assert steps["nfc"]["records"] == 2 and steps["whitespace"]["records"] == 4 and steps["mojibake"]["records"] == 0
    assert steps["whitespace"]["share"] == 0.5
    assert len(steps["whitespace"]["examples"]) == 3 and {e["id"] for e in steps["markup"]["examples"]} == {"a0", "b0"}
    page = render(norm)
    assert "<del>&lt;b&gt;</del>" in page and "⟨U+0301⟩" in page and page.count("class=diff>") == 2 + 2 + 3


def test_staged_records_carry_the_trace(tmp_path):
    from sft_ray.config import RunConfig
    from sft_ray.staging import TRACED_SCHEMA, unit_records

    f = tmp_path / "a.jsonl"
    f.write_text(json.dumps({"text": "Some  text with a double space in it, long enough."}) + "\n")
    cfg = RunConfig.model_validate({"sources": [{"name": "s", "kind": "text", "format": "jsonl", "path": str(f)}], "output": str(tmp_path / "o"),
                                    "clean": {"langid": {"enabled": False}}})
    blocks = list(unit_records(cfg, "s", [{"url": str(f), "rel": "a.jsonl", "size": f.stat().st_size}]))
    assert blocks[0].schema == TRACED_SCHEMA and steps_of(blocks[0][STEPS_COLUMN][0].as_py()) == ["whitespace"]
    off = cfg.model_copy(update={"clean": cfg.clean.model_copy(update={"enabled": False})})
    assert list(unit_records(off, "s", [{"url": str(f), "rel": "a.jsonl", "size": f.stat().st_size}]))[0].schema == TRACED_SCHEMA
