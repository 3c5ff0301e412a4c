"""One bad line costs one record: the reader rejects it with its line number and goes on."""

from __future__ import annotations

import csv
import io

import pytest

from sft_ray.config import SourceConfig
from sft_ray.ingest.files import list_source_files
from sft_ray.ingest.records import read_items
from tests.conftest import DEMO_DATA


def _read(src: SourceConfig) -> list[dict]:
    return [r for block in read_items(src, list_source_files(src), block_rows=4) for r in block.to_pylist()]


def _src(**kw) -> SourceConfig:
    return SourceConfig.model_validate({"name": "s", "kind": "text", "format": "jsonl", **kw})


def test_a_json_line_nested_past_the_recursion_limit_is_one_reject(tmp_path):
    p = tmp_path / "a.jsonl"
    deep = '{"text": ' + "[" * 10_000 + "]" * 10_000 + "}"
    p.write_text('{"text": "first document"}\n' + deep + '\n{"text": "third document"}\n')
    rows = _read(_src(path=str(p)))
    assert [(r["text"][:14], r["reject_reason"]) for r in rows] == [
        ("first document", None), ('{"text": [[[[[', "malformed_json"), ("third document", None)]
    assert '"line": 2' in rows[1]["meta"]


def _ag_news_cp1252(tmp_path, n: int = 40) -> tuple:
    """Real AG News rows with typographic quotes, written as Windows-1252 (a spreadsheet's export)."""
    with open(DEMO_DATA / "ag_news_test_part.csv", newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f)][:n]
    rows[3][2] = "Caf\u00e9 owners \u201cquoted\u201d \u2013 a test"
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(rows)
    p = tmp_path / "news.csv"
    p.write_bytes(buf.getvalue().encode("cp1252", errors="replace"))
    return p, rows


@pytest.mark.parametrize("encoding", ["cp1252", "auto"])
def test_a_cp1252_csv_reads_whole_with_its_encoding(tmp_path, encoding):
    p, rows = _ag_news_cp1252(tmp_path)
    src = _src(kind="news", format="csv", path=str(p), fields={"label": "0", "title": "1", "text": "2"}, encoding=encoding)
    got = _read(src)
    assert len(got) == len(rows) and not any(r["reject_reason"] for r in got)
    assert got[3]["text"] == "Caf\u00e9 owners \u201cquoted\u201d \u2013 a test"


def test_a_cp1252_csv_read_as_utf8_rejects_only_its_undecodable_row(tmp_path):
    p, rows = _ag_news_cp1252(tmp_path)
    got = _read(_src(kind="news", format="csv", path=str(p), fields={"label": "0", "title": "1", "text": "2"}))
    assert len(got) == len(rows)  # every input row is accounted for
    assert [r["reject_reason"] for r in got if r["reject_reason"]] == ["invalid_utf8"]
    assert got[3]["reject_reason"] == "invalid_utf8" and '"line": 4' in got[3]["meta"]
    assert got[4]["text"] == rows[4][2]  # the rows after it are read


def test_a_plain_text_file_named_gz_is_read_as_text(tmp_path):
    p = tmp_path / "a.jsonl.gz"
    p.write_text('{"text": "first document"}\n{"text": "second document"}\n')
    assert [r["text"] for r in _read(_src(path=str(p)))] == ["first document", "second document"]


def test_an_unknown_or_non_ascii_compatible_encoding_is_a_config_error():
    with pytest.raises(ValueError, match="unknown encoding"):
        _src(format="csv", path="x.csv", encoding="klingon")
    with pytest.raises(ValueError, match="not ASCII-compatible"):
        _src(format="csv", path="x.csv", encoding="utf-16")
