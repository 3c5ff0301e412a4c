"""Readers on tiny real inputs: values, stable ids, and every unparseable row as a named reject."""

from __future__ import annotations

import gzip
import json

import pytest
import zstandard

from sft_ray.config import SourceConfig
from sft_ray.ingest.files import InputNotFound, list_source_files
from sft_ray.ingest.records import read_items
from tests.conftest import DEMO_DATA


def _read(src: SourceConfig):
    rows = []
    for block in read_items(src, list_source_files(src), block_rows=3):
        rows += block.to_pylist()
    return rows


def _src(**kw) -> SourceConfig:
    return SourceConfig.model_validate({"name": "s", "kind": "text", "format": "jsonl", **kw})


def test_jsonl_malformed_line_is_a_reject_and_the_rest_is_read(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"text": "first document here"}\n{"text": broken\n\n{"text": "third document"}\n[1, 2]\n')
    rows = _read(_src(path=str(p)))
    assert [r["reject_reason"] for r in rows] == [None, "malformed_json", None, "malformed_json"]
    assert rows[1]["text"] == '{"text": broken' and json.loads(rows[1]["meta"])["line"] == 2
    assert rows[0]["text"] == "first document here" and rows[0]["id"].startswith("s-")


def test_missing_and_wrongly_typed_fields(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_text('{"body": "x"}\n{"text": ["a", "list"]}\n{"text": 12345}\n')
    rows = _read(_src(path=str(p)))
    assert [r["reject_reason"] for r in rows] == ["missing_field", "wrong_type", None]
    assert rows[2]["text"] == "12345"


def test_invalid_utf8_line(tmp_path):
    p = tmp_path / "a.jsonl"
    p.write_bytes(b'{"text": "ok text"}\n{"text": "\xff\xfe bad"}\n')
    assert [r["reject_reason"] for r in _read(_src(path=str(p)))] == [None, "invalid_utf8"]


def test_ids_come_from_content_or_source_id_not_position(tmp_path):
    (tmp_path / "a.jsonl").write_text('{"text": "alpha text"}\n{"text": "beta text"}\n')
    (tmp_path / "b.jsonl").write_text('{"text": "beta text"}\n')
    (tmp_path / "c.jsonl").write_text('{"doc": "d7", "text": "gamma"}\n')
    ids_a = [r["id"] for r in _read(_src(path=str(tmp_path / "a.jsonl")))]
    ids_b = [r["id"] for r in _read(_src(path=str(tmp_path / "b.jsonl")))]
    assert ids_a[1] == ids_b[0] and ids_a[0] != ids_a[1]
    assert _read(_src(path=str(tmp_path / "c.jsonl"), fields={"id": "doc", "text": "text"}))[0]["id"] == "s-d7"


def test_csv_by_column_index_with_label_names_ag_news():
    src = SourceConfig.model_validate(
        {"name": "ag", "kind": "news", "format": "csv", "path": str(DEMO_DATA / "ag_news_test_part.csv"),
         "fields": {"label": 0, "title": 1, "text": 2}, "label_names": {"3": "Business"}, "limit": 5}
    )
    rows = _read(src)
    assert len(rows) == 5
    assert rows[0]["title"] == "Fears for T N pension after talks" and rows[0]["label"] == "Business"
    assert rows[1]["label"] == "4"  # unmapped values are kept as they are


def test_csv_header_and_wrong_column_count(tmp_path):
    p = tmp_path / "a.csv"
    p.write_text("title,body\nA title,Some body text\nonly-one-column\nT2,B2\n")
    rows = _read(SourceConfig.model_validate({"name": "c", "kind": "news", "format": "csv", "path": str(p), "header": True, "fields": {"title": "title", "text": "body"}}))
    assert [r["reject_reason"] for r in rows] == [None, "wrong_column_count", None]
    assert rows[0]["text"] == "Some body text"


def test_bitext_gz_and_misaligned_tail(tmp_path):
    (tmp_path / "x.en.gz").write_bytes(gzip.compress("A dog runs.\nTwo cats.\nExtra line.\n".encode()))
    (tmp_path / "x.de.gz").write_bytes(gzip.compress("Ein Hund rennt.\nZwei Katzen.\n".encode()))
    src = SourceConfig.model_validate(
        {"name": "b", "kind": "translation", "format": "bitext", "langs": {"src": "en", "tgt": "de"},
         "path": {"src": str(tmp_path / "*.en.gz"), "tgt": str(tmp_path / "*.de.gz")}}
    )
    rows = _read(src)
    assert [(r["src_text"], r["tgt_text"]) for r in rows[:2]] == [("A dog runs.", "Ein Hund rennt."), ("Two cats.", "Zwei Katzen.")]
    assert rows[0]["src_lang"] == "en" and rows[0]["tgt_lang"] == "de"
    assert rows[2]["reject_reason"] == "misaligned_bitext" and "Extra line." in rows[2]["text"]


def test_tsv_translation_and_zstd(tmp_path):
    p = tmp_path / "pairs.tsv.zst"
    p.write_bytes(zstandard.ZstdCompressor().compress("Hello there.\tHallo.\nGood night.\tGute Nacht.\n".encode()))
    src = SourceConfig.model_validate({"name": "t", "kind": "translation", "format": "tsv", "path": str(p), "langs": {"src": "en", "tgt": "de"}})
    assert [(r["src_text"], r["tgt_text"]) for r in _read(src)] == [("Hello there.", "Hallo."), ("Good night.", "Gute Nacht.")]


def test_parquet_with_field_mapping(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"body": ["p one text", "p two text"], "headline": ["H1", "H2"]}), tmp_path / "a.parquet")
    rows = _read(SourceConfig.model_validate({"name": "p", "kind": "news", "format": "parquet", "path": str(tmp_path), "fields": {"text": "body", "title": "headline"}}))
    assert [(r["title"], r["text"]) for r in rows] == [("H1", "p one text"), ("H2", "p two text")]


def test_limit_counts_every_input_record(tmp_path):
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(10)))
    (tmp_path / "b.jsonl").write_text("".join(json.dumps({"text": f"doc b{i}"}) + "\n" for i in range(10)))
    rows = _read(_src(path=str(tmp_path / "*.jsonl"), limit=13))
    assert len(rows) == 13 and rows[-1]["text"] == "doc b2"


def test_truncated_gzip_keeps_what_was_read_and_names_the_file(tmp_path):
    data = gzip.compress("".join(json.dumps({"text": f"line number {i}"}) + "\n" for i in range(2000)).encode())
    (tmp_path / "cut.jsonl.gz").write_bytes(data[: len(data) // 2])
    rows = _read(_src(path=str(tmp_path / "cut.jsonl.gz")))
    assert rows[-1]["reject_reason"] == "unreadable_file" and "cut.jsonl.gz" in rows[-1]["meta"]
    assert all(r["reject_reason"] is None for r in rows[:-1]) and len(rows) > 1


def test_missing_path_fails_fast_naming_it(tmp_path):
    with pytest.raises(InputNotFound, match="nope"):
        list_source_files(_src(path=str(tmp_path / "nope" / "*.jsonl")))


def test_empty_file_yields_no_records(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    assert _read(_src(path=str(tmp_path / "e.jsonl"))) == []


def test_a_failing_store_fails_the_read_but_a_bad_file_is_a_reject(tmp_path, monkeypatch):
    """A truncated .gz is the file's fault: recorded as `unreadable_file`, the read goes on. A store
    that still answers 503 after the retries (s3fs: OSError EBUSY) must fail the run instead of
    quietly shrinking it."""
    import errno
    import gzip

    from sft_ray.config import SourceConfig
    from sft_ray.ingest import records
    from sft_ray.storage import StoreError

    good = tmp_path / "a.jsonl.gz"
    good.write_bytes(gzip.compress(b'{"text": "one fine line of text"}\n' * 50)[:-30])
    src = SourceConfig(name="s", kind="text", format="jsonl", path=str(good))
    item = {"url": str(good), "rel": "a.jsonl.gz", "size": 1}
    rows = [r for t in records.read_items(src, [item], 1000) for r in t.to_pylist()]
    assert rows[-1]["reject_reason"] == "unreadable_file" and "EOFError" in rows[-1]["text"]

    def unavailable(*_a, **_k):
        raise OSError(errno.EBUSY, "Service Unavailable")

    monkeypatch.setattr(records.formats, "read_jsonl", unavailable)
    with pytest.raises(StoreError, match="reading .*a.jsonl.gz failed after retries"):
        list(records.read_items(src, [item], 1000))
