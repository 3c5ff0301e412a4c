"""Work units of read + clean (sft_ray/staging.py): small files grouped by content-defined
boundaries, large uncompressed line files cut into byte ranges that read every line exactly once
with the ids and `meta` of the whole file, and incremental rebuilds that stage only new units."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sft_ray.build import build_sft_data
from sft_ray.config import RunConfig, SourceConfig
from sft_ray.ingest import list_inputs, ranges
from sft_ray.ingest.records import read_items
from sft_ray.staging import units
from tests.conftest import DEMO_DATA, TEST_DATA
from tests.reliability.outputs import digest

AG = DEMO_DATA / "ag_news_test_part.csv"


def _cfg(sources: list[dict], unit_bytes: int, **extra) -> RunConfig:
    return RunConfig.model_validate({"sources": sources, "staging": {"unit_bytes": unit_bytes}, **extra})


def _items(n: int, size) -> list[dict]:
    return [{"url": f"/c/f{i:04d}.html", "rel": f"f{i:04d}.html", "size": size(i), "tgt_url": None, "tgt_rel": None} for i in range(n)]


# ---- grouping ---------------------------------------------------------------------------------

def test_small_files_are_grouped_into_units_of_about_unit_bytes():
    items = _items(2000, lambda i: 1000 + (i * 37) % 2000)  # 1000..2999 bytes, 4 MB in all
    total = sum(it["size"] for it in items)
    cfg = _cfg([{"name": "w", "kind": "web", "format": "html", "path": "/c"}], unit_bytes=100_000)
    us = units(cfg, {"w": items})
    urls = [it["url"] for u in us for it in u.items]
    assert sorted(urls) == sorted(it["url"] for it in items) and len(set(urls)) == len(items)  # each file in exactly one unit
    assert total / 100_000 / 2 <= len(us) <= total / 100_000 * 2  # about total / unit_bytes (40)
    assert all(sum(it["size"] for it in u.items) < 2 * 100_000 + 3000 for u in us)  # capped at 2 x unit_bytes
    assert [u.key for u in units(cfg, {"w": list(reversed(items))})] == [u.key for u in us]  # deterministic

    # One file more, in the middle of sorted order: the other units keep their keys.
    added = items + [{**items[1000], "url": "/c/f1000a.html", "rel": "f1000a.html", "size": 1500}]
    before, after = {u.key for u in us}, {u.key for u in units(cfg, {"w": added})}
    assert len(after - before) <= 2 and len(before - after) <= 2
    # Per file when asked, and one unit for a `limit`ed source.
    assert len(units(_cfg([{"name": "w", "kind": "web", "format": "html", "path": "/c"}], 100_000, staging={"group_small_files": False, "unit_bytes": 100_000}), {"w": items})) == 2000
    assert len(units(_cfg([{"name": "w", "kind": "web", "format": "html", "path": "/c", "limit": 5}], 100_000), {"w": items})) == 1


def test_files_of_half_a_unit_or_more_are_units_of_their_own():
    """Grouped, files near the unit size made units of 1 to 4 files: one straggler task (staging.py)."""
    cfg = _cfg([{"name": "w", "kind": "web", "format": "html", "path": "/c"}], unit_bytes=100_000)
    items = _items(8, lambda i: 56_000) + [{**it, "url": f"/c/s{i}.html", "rel": f"s{i}.html"} for i, it in enumerate(_items(40, lambda i: 2_000))]
    us = units(cfg, {"w": items})
    assert sorted(len(u.items) for u in us if u.items[0]["size"] == 56_000) == [1] * 8
    assert all(it["size"] == 2_000 for u in us if len(u.items) > 1 for it in u.items)  # the small ones are still grouped
    assert sum(len(u.items) for u in us) == 48 and len(us) < 48


def test_large_files_are_cut_only_when_uncompressed_line_files(tmp_path):
    big = {"rel": "big", "size": 10_000, "tgt_url": None, "tgt_rel": None}
    for fmt, url, n in (("jsonl", "/c/big.jsonl", 4), ("csv", "/c/big.csv", 4), ("jsonl", "/c/big.jsonl.gz", 1),
                        ("parquet", "/c/big.parquet", 1), ("warc", "/c/big.warc.gz", 1)):
        us = units(_cfg([{"name": "s", "kind": "web" if fmt == "warc" else "text", "format": fmt, "path": "/c", **({"header": True} if fmt == "csv" else {})}], 3000), {"s": [{**big, "url": url}]})
        assert len(us) == n, (fmt, url)
        if n > 1:
            spans = [(u.items[0]["start"], u.items[0]["end"]) for u in us]
            assert spans[0][0] == 0 and spans[-1][1] == 10_000 and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))


# ---- byte ranges ------------------------------------------------------------------------------

AWKWARD = (b'{"text": "first"}\r\n\r\n{"text": "a line long enough to cross several cuts ' + b"x" * 40 + b'"}\n'
           b"\n\n" + b'{"text": broken\n' + b'{"text": "\xff bad"}\n' + b'{"text": "crlf"}\r\n' + b'{"text": "last, no newline"}')


@pytest.mark.parametrize("unit_bytes", list(range(1, 40)) + [64, 100, 10_000])
def test_ranges_read_every_line_exactly_once(tmp_path, unit_bytes):
    p = tmp_path / "a.jsonl"
    p.write_bytes(AWKWARD)
    whole = list(enumerate(open(p, "rb"), start=1))
    got = []
    for s, e in ranges.cuts(len(AWKWARD), unit_bytes):
        got += list(ranges.range_lines(str(p), {}, s, e))
    assert got == whole


def _rows(src: SourceConfig, unit_bytes: int) -> list[dict]:
    cfg = RunConfig.model_validate({"sources": [src.model_dump()], "staging": {"unit_bytes": unit_bytes}})
    out = []
    for u in units(cfg, list_inputs(cfg)):
        for block in read_items(src, u.items, block_rows=7):
            out += block.to_pylist()
    return out


@pytest.mark.parametrize("unit_bytes", [5, 23, 64, 10_000])
def test_jsonl_ranges_give_the_records_ids_and_meta_of_the_whole_file(tmp_path, unit_bytes):
    p = tmp_path / "a.jsonl"
    p.write_bytes(AWKWARD)
    src = SourceConfig.model_validate({"name": "s", "kind": "text", "format": "jsonl", "path": str(p)})
    whole = _rows(src, 1 << 30)
    assert [r["reject_reason"] for r in whole] == [None, None, "malformed_json", "invalid_utf8", None, None]
    assert _rows(src, unit_bytes) == whole


def _ag_csv(path: Path, n: int, header: bool) -> None:
    with open(AG, newline="") as f:
        rows = [r for _, r in zip(range(n), csv.reader(f))]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        if header:
            w.writerow(["label", "title", "body"])
        w.writerows(rows)


@pytest.mark.parametrize("header", [True, False])
def test_csv_ranges_read_the_header_and_equal_the_whole_file(tmp_path, header):
    p = tmp_path / "ag.csv"
    _ag_csv(p, 60, header)
    with open(p, "a") as f:
        f.write("only-one-column\n\n")  # a malformed row and an empty line, read by the last range
    fields = {"label": "label", "title": "title", "text": "body"} if header else {"label": 0, "title": 1, "text": 2}
    src = SourceConfig.model_validate({"name": "ag", "kind": "news", "format": "csv", "path": str(p), "header": header, "fields": fields})
    whole = _rows(src, 1 << 30)
    assert len(whole) == 61 and whole[-1]["reject_reason"] == "wrong_column_count"
    for unit_bytes in (p.stat().st_size // 3, 997):
        assert _rows(src, unit_bytes) == whole


def test_csv_row_spanning_lines_in_a_cut_file_is_a_named_unreadable_reject(tmp_path):
    p = tmp_path / "q.csv"
    p.write_text("".join(f'{i},"line one\nline two of row {i}"\n' for i in range(40)))
    src = SourceConfig.model_validate({"name": "q", "kind": "text", "format": "csv", "path": str(p), "fields": {"text": 1}})
    assert all(r["reject_reason"] is None for r in _rows(src, 1 << 30))  # read whole: fine
    bad = [r for r in _rows(src, 300) if r["reject_reason"] == "unreadable_file"]
    assert bad and all("spans lines" in r["text"] and "unit_bytes" in r["text"] for r in bad)
    assert len({r["id"] for r in bad}) == len(bad)  # one reject per range, distinct ids


def test_lines_ranges_equal_the_whole_file():
    src = SourceConfig.model_validate({"name": "rt", "kind": "sentiment", "format": "lines", "encoding": "latin-1",
                                       "path": {"neg": str(TEST_DATA / "sentiment/rt-polarity/rt-polarity.neg")}})
    whole = _rows(src, 1 << 30)
    assert len(whole) > 5000 and _rows(src, 150_000) == whole


# ---- builds -----------------------------------------------------------------------------------

def _docs(path: Path, start: int, n: int) -> None:
    with open(AG, newline="") as f:
        descs = [r[2] for r in csv.reader(f)]
    with open(path, "w") as f:
        for j in range(start, start + n):
            f.write(json.dumps({"text": "\n".join(descs[(j * 7 + m) % len(descs)] for m in range(12))}) + "\n")
        f.write('{"text": broken\n\n')


def _build_cfg(inputs: Path, out: Path, unit_bytes: int, **extra) -> RunConfig:
    return RunConfig.model_validate({
        "output": str(out), "dedup": {"num_partitions": 2}, "label": {"enabled": False}, "staging": {"unit_bytes": unit_bytes, **extra.pop("staging", {})},
        "sources": [{"name": "web", "kind": "web", "format": "jsonl", "path": str(inputs / "*.jsonl"), "langs": {"text": "en"}}], **extra})


@pytest.mark.slow
def test_a_file_cut_into_ranges_builds_the_same_output_as_one_unit(ray_local, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    _docs(inputs / "big.jsonl", 0, 90)
    size = (inputs / "big.jsonl").stat().st_size
    cut = build_sft_data(_build_cfg(inputs, tmp_path / "cut", unit_bytes=size // 3 + 1)).manifest
    one = build_sft_data(_build_cfg(inputs, tmp_path / "one", unit_bytes=1 << 30, resumable=False)).manifest
    assert cut["resume"] == {"units": 3, "reused": 0}
    assert digest(tmp_path / "cut") == digest(tmp_path / "one")
    assert cut["counts"] == one["counts"] and cut["counts"]["by_source"]["web"]["input"] == 91


@pytest.mark.slow
def test_adding_a_file_restages_only_its_unit(ray_local, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(8):
        _docs(inputs / f"part{i}.jsonl", i * 20, 20)
    unit_bytes = 2 * (inputs / "part0.jsonl").stat().st_size
    out = tmp_path / "out"
    first = build_sft_data(_build_cfg(inputs, out, unit_bytes, staging={"keep_work": True})).manifest
    assert (out / "_SUCCESS").is_file() and (out / "_work" / "fingerprint.json").is_file()

    _docs(inputs / "part3b.jsonl", 500, 20)  # lands in the middle of sorted order
    again = build_sft_data(_build_cfg(inputs, out, unit_bytes, staging={"keep_work": True}, overwrite=True)).manifest
    print(f"\n[units] first build {first['resume']}, after adding a file {again['resume']}")
    assert first["resume"]["reused"] == 0 and again["resume"]["reused"] == again["resume"]["units"] - 1
    keys = {p.name.rsplit(".", 1)[0] for p in (out / "_work" / "clean").iterdir()}
    assert len(keys) == again["resume"]["units"]  # the replaced unit's staged files are gone
    # The shuffles are sized from the staged records' bytes: this run's units as their tasks
    # returned them, the reused ones from their markers, with no execution of the staged read.
    markers = [json.loads(p.read_text()) for p in (out / "_work" / "clean").glob("*.done")]
    assert again["dedup"]["measured_on"] == "staged records" and all(m["bytes"] > 0 for m in markers)
    assert again["dedup"]["bytes"] == sum(m["bytes"] for m in markers) > first["dedup"]["bytes"]

    scratch = build_sft_data(_build_cfg(inputs, tmp_path / "scratch", unit_bytes, resumable=False)).manifest
    assert digest(out) == digest(tmp_path / "scratch") and again["counts"] == scratch["counts"]

    # A removed file's records leave the output; its unit's staged files leave _work/.
    (inputs / "part5.jsonl").unlink()
    less = build_sft_data(_build_cfg(inputs, out, unit_bytes, staging={"keep_work": True}, overwrite=True)).manifest
    assert less["counts"]["input"] == again["counts"]["input"] - 21 and less["resume"]["reused"] >= less["resume"]["units"] - 1
    assert len({p.name.rsplit(".", 1)[0] for p in (out / "_work" / "clean").iterdir()}) == less["resume"]["units"]


def test_staged_bytes_come_from_the_tasks_then_the_markers(tmp_path):
    """The dedup shuffles are sized from the staged records' in-memory bytes without reading them:
    this run's units from their tasks, reused units from their markers, and a marker written before
    markers carried the figure from its Parquet file's size (x _EXPANSION)."""
    from sft_ray.staging import _EXPANSION, Workspace

    work = Workspace(str(tmp_path / "out"), {})
    clean = Path(work.clean_dir)
    clean.mkdir(parents=True)
    (clean / "src-new.done").write_text(json.dumps({"rows": 3, "bytes": 999}))  # the task's figure wins
    (clean / "src-reused.done").write_text(json.dumps({"rows": 2, "bytes": 1234}))
    (clean / "src-old.done").write_text(json.dumps({"rows": 2}))
    pq.write_table(pa.table({"text": ["a" * 100, "b" * 100]}), clean / "src-old.parquet")
    old = (clean / "src-old.parquet").stat().st_size
    assert work.staged_bytes(["src-new", "src-reused", "src-old"], {"src-new": 500}) == 500 + 1234 + old * _EXPANSION
    assert work.staged_bytes([], {}) == 0


@pytest.mark.slow
@pytest.mark.parametrize("resumable,ray_start_s,driver_units", [(True, 0.0, 1), (True, 60.0, 4), (False, 60.0, 4)])
def test_the_driver_stages_units_while_ray_starts(ray_local, tmp_path, monkeypatch, resumable, ray_start_s, driver_units):
    """`sft-ray build` starts its local Ray inside the build (build_sft_data's start_ray): meanwhile
    the driver reads and cleans units itself (staging.DriverUnits), and the output equals a build
    whose units all ran as Ray tasks. After the first unit the driver takes another only while its
    pace says it ends before Ray's expected start (RAY_START_S): none when that is 0, all 4 (no Ray
    task at all) when it is a minute. Here Ray is up already; the stand-in start waits for the
    driver's thread, as a slow start would, and sees what it left."""
    import threading
    import time

    from sft_ray import staging

    monkeypatch.setattr(staging, "RAY_START_S", ray_start_s)
    inputs = tmp_path / "in"
    inputs.mkdir()
    for i in range(4):
        _docs(inputs / f"part{i}.jsonl", i * 20, 20)
    unit_bytes = (inputs / "part0.jsonl").stat().st_size + 1
    seen: dict = {}

    def slow_start() -> None:
        threads = [t for t in threading.enumerate() if t.name == "sft-ray-driver-units"]
        for t in threads:
            t.join(60)
        seen["threads"] = len(threads)
        seen["markers"] = sorted(p.name for p in (tmp_path / "head" / "_work" / "clean").glob("*.done")) if resumable else []
        time.sleep(0.2)

    cfg = _build_cfg(inputs, tmp_path / "head", unit_bytes, resumable=resumable)
    head = build_sft_data(cfg, start_ray=slow_start).manifest
    ref = build_sft_data(_build_cfg(inputs, tmp_path / "ref", unit_bytes, resumable=resumable)).manifest
    assert seen["threads"] == 1  # the driver's units, in one thread, finished before Ray was "up"
    if resumable:  # their markers were written: the Ray tasks took the other units
        assert len(seen["markers"]) == driver_units and head["resume"] == {"units": 4, "reused": 0}
    assert head["profile"]["ray_start_s"] >= 0.2 and ref["profile"]["ray_start_s"] is None
    assert head["profile"]["first_record_s"] <= head["profile"]["startup_s"] + head["profile"]["ray_start_s"]
    assert digest(tmp_path / "head") == digest(tmp_path / "ref") and head["counts"] == ref["counts"]


def test_the_drivers_unit_is_the_smallest_that_is_not_tiny_and_starts_at_a_file_start():
    from sft_ray.staging import HEAD_MAX_BYTES, Unit, driver_order, head_choice

    def unit(size: int, start: int | None = None, url: str = "/c/a.jsonl") -> Unit:
        return Unit("s", f"s-{size}-{start}", [{"url": url, "size": size, **({"start": start, "end": start + size} if start is not None else {})}])

    mib = 1 << 20
    assert head_choice([unit(0), unit(3 * mib), unit(2 * mib), unit(100 * mib)]) == 2  # an empty file's unit shows nothing early
    assert head_choice([unit(5 * mib, start=5 * mib), unit(8 * mib)]) == 1  # a range after a file's start needs its lines counted first
    assert head_choice([unit(10), unit(200), unit(0)]) == 1  # all tiny: the largest
    assert head_choice([unit(HEAD_MAX_BYTES + 1)]) is None and head_choice([]) is None
    assert head_choice([unit(20 * mib, url="/c/a.jsonl.gz")]) is None  # compressed: 4x its listed size in memory (listed_bytes)
    # After the first, the driver may take the other whole-file units of at most HEAD_MAX_BYTES, smallest first.
    assert driver_order([unit(0), unit(3 * mib), unit(2 * mib), unit(100 * mib), unit(5 * mib, start=5 * mib), unit(mib)]) == [5, 0, 2, 1]
    assert driver_order([unit(HEAD_MAX_BYTES + 1)]) == []


def test_a_streamed_drivers_unit_without_records_adds_an_empty_block(ray_local, tmp_path):
    from sft_ray.staging import read_clean

    (tmp_path / "empty.jsonl").write_text("")
    cfg = RunConfig.model_validate({"output": str(tmp_path / "out"), "sources": [{"name": "s", "kind": "text", "format": "jsonl", "path": str(tmp_path / "*.jsonl")}]})
    started = []
    ds, first_at = read_clean(cfg, units(cfg, list_inputs(cfg)), materialize=True, start_ray=lambda: started.append(1))
    assert started == [1] and ds.count() == 0 and first_at is None


def test_a_staged_unit_is_read_back_whole_or_in_even_shares_of_its_row_groups(tmp_path):
    """Workspace.read's task body: the rows of a staged unit's file, split into `pieces` by row
    group, together equal the file, each row id its unit's ordinal << 32 | its row; a unit without
    records still gives one empty block (the dataset keeps its schema)."""
    from sft_ray.dedup.removals import ROW, UNIT_BITS
    from sft_ray.staging import STAGED_SCHEMA, _read_staged, _stage_units

    inputs = tmp_path / "in"
    inputs.mkdir()
    _docs(inputs / "a.jsonl", 0, 9)
    (inputs / "empty.jsonl").write_text("")
    cfg = _build_cfg(inputs, tmp_path / "out", 1 << 20, read_batch_size=2)  # 2 records per block: row groups of 2
    clean = tmp_path / "clean"
    keys = {}
    for u in units(cfg.model_copy(update={"staging": cfg.staging.model_copy(update={"group_small_files": False})}), list_inputs(cfg)):
        row = pa.table({"source": [u.source], "key": [u.key], "ordinal": [0], "items": [json.dumps(u.items)]})
        list(_stage_units(row, cfg.model_dump_json(), str(clean), {}))
        keys["empty" if "empty" in u.items[0]["url"] else "a"] = u.key
    whole = pq.read_table(clean / f"{keys['a']}.parquet")
    assert pq.ParquetFile(clean / f"{keys['a']}.parquet").num_row_groups > 3

    def read(key: str, ordinal: int, pieces: int) -> list[list[pa.Table]]:
        return [list(_read_staged(pa.table({"key": [key], "ordinal": [ordinal], "piece": [j], "pieces": [pieces]}), str(clean), {}))
                for j in range(pieces)]

    for pieces in (1, 3):
        got = read(keys["a"], 5, pieces)
        assert len(got) == pieces and all(len(p) == 1 for p in got)  # each piece one block here
        table = pa.concat_tables([b for p in got for b in p])
        assert table.schema == STAGED_SCHEMA and table.drop_columns([ROW]).equals(whole.drop_columns([ROW]))
        assert table[ROW].to_pylist() == [(5 << UNIT_BITS) + r for r in whole[ROW].to_pylist()]
    empty = read(keys["empty"], 0, 2)
    assert [len(p) for p in empty] == [1, 0] and empty[0][0].num_rows == 0 and empty[0][0].schema == STAGED_SCHEMA
