"""Web readers (WARC, WET, HTML) on tiny real archives and on hostile inputs: every record of an
archive ends as a document or a named reject, and nothing else is lost."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import pytest

from sft_ray.config import ExtractConfig, SourceConfig
from sft_ray.ingest.files import list_source_files
from sft_ray.ingest.records import read_items

DATA = Path(__file__).resolve().parents[1] / "data" / "web"
WHIRLWIND = DATA / "cc_whirlwind_an.wikipedia.warc.gz"
CC_SAMPLE = DATA / "resiliparse_CC-MAIN-2020-34_sample_first16.warc.gz"
ZH = "中华人民共和国位于亚洲东部，太平洋西岸。北京是首都，上海是最大的经济中心城市。长江和黄河是中国最长的两条河流。"


def _read(path, fmt="warc", extract_cfg=None) -> list[dict]:
    src = SourceConfig.model_validate({"name": "w", "kind": "web", "format": fmt, "path": str(path)})
    return [r for b in read_items(src, list_source_files(src), 4, extract_cfg) for r in b.to_pylist()]


def _reasons(rows) -> list:
    return [r["reject_reason"] for r in rows]


def _warc_record(rtype: str, uri: str, block: bytes = b"", n: int = 0) -> bytes:
    msgtype = {"response": "application/http; msgtype=response", "request": "application/http; msgtype=request"}
    head = (
        f"WARC/1.0\r\nWARC-Type: {rtype}\r\nWARC-Target-URI: {uri}\r\nWARC-Date: 2024-01-0{n % 9 + 1}T00:00:00Z\r\n"
        f"WARC-Record-ID: <urn:uuid:00000000-0000-0000-0000-{n:012d}>\r\n"
        f"Content-Type: {msgtype.get(rtype, 'application/warc-fields')}\r\nContent-Length: {len(block)}\r\n\r\n"
    )
    return head.encode() + block + b"\r\n\r\n"


def _response(uri: str, body: bytes, content_type: str = "text/html", status: str = "200 OK", n: int = 0) -> bytes:
    http = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    return _warc_record("response", uri, http + body, n)


def _page(body: str, head: str = "<title>Testseite</title>") -> str:
    return f"<!DOCTYPE html><html><head>{head}</head><body><article><h1>Heading</h1><p>{body}</p></article></body></html>"


def test_warc_response_is_a_document_and_every_other_record_a_named_reject():
    rows = _read(WHIRLWIND)
    assert _reasons(rows) == ["warc_warcinfo", "warc_request", None, "warc_metadata"]
    doc = rows[2]
    meta = json.loads(doc["meta"])
    assert doc["url"] == "https://an.wikipedia.org/wiki/Escopete" and doc["id"].startswith("w-")
    assert "Escopete" in doc["title"] and "Escopete" in doc["text"] and "<div" not in doc["text"]
    assert meta["charset"] == "utf-8" and meta["warc_record_id"].startswith("<urn:uuid:")
    assert meta["warc_date"] == "2024-05-18T01:58:10Z" and meta["date"] and meta["line"] == 3
    assert all(r["reject_stage"] == "ingest" for r in rows if r["reject_reason"])
    assert json.loads(rows[1]["meta"])["url"] == doc["url"]  # rejects keep the record's URL


def test_wet_conversion_records_are_text_already():
    rows = _read(DATA / "cc_whirlwind_an.wikipedia.warc.wet.gz", fmt="wet")
    assert _reasons(rows) == ["warc_warcinfo", None]
    assert rows[1]["url"] == "https://an.wikipedia.org/wiki/Escopete" and rows[1]["text"].startswith("Escopete")


def test_warcio_example_gzip_encoded_response_and_revisit():
    rows = _read(DATA / "warcio_example.com.warc.gz")
    assert _reasons(rows) == ["warc_warcinfo", "warc_warcinfo", None, "warc_request", "warc_revisit", "warc_request"]
    assert rows[2]["title"] == "Example Domain" and "illustrative examples" in rows[2]["text"]


def test_common_crawl_sample_with_mixed_encodings():
    rows = _read(CC_SAMPLE)
    docs = {r["url"]: (r, json.loads(r["meta"])) for r in rows if not r["reject_reason"]}
    assert len(rows) == 16 and len(docs) == 5
    assert sorted(set(_reasons(rows)) - {None}) == ["warc_metadata", "warc_request", "warc_warcinfo"]
    ru, ru_meta = docs["http://01spb.ru/company/"]
    assert ru_meta["charset"] == "cp1251" and "О компании" in ru["text"]
    zh_declared = docs["http://037426.cn/"]  # header says gb2312 -> read as its superset gbk
    zh_sniffed = docs["http://041696.com/15477/list_6_4.html"]  # no charset in the header
    assert zh_declared[1]["charset"] == "gbk" and "视频" in zh_declared[0]["title"]
    assert zh_sniffed[1]["charset"] in ("gbk", "gb18030") and "上海" in zh_sniffed[0]["title"]


def test_truncated_warc_gz_keeps_records_before_the_cut(tmp_path):
    data = CC_SAMPLE.read_bytes()
    cut = tmp_path / "cut.warc.gz"
    cut.write_bytes(data[: len(data) * 7 // 10])
    rows = _read(cut)
    full = _read(CC_SAMPLE)
    assert _reasons(rows)[-1] == "truncated_warc" and "truncated_warc" not in _reasons(rows)[:-1]
    # every record before the cut is kept exactly as in the whole file (reject ids name the file)
    assert [(r["reject_reason"], r["text"]) for r in rows[:-1]] == [(r["reject_reason"], r["text"]) for r in full[: len(rows) - 1]]
    assert sum(1 for r in rows if r["reject_reason"] is None) >= 2


def test_uncompressed_warc_cut_mid_record(tmp_path):
    body = _page("Ein Absatz mit genug Text, damit etwas übrig bleibt. " * 20).encode()
    whole = _warc_record("request", "http://a.example/", n=1) + _response("http://a.example/", body, n=2)
    p = tmp_path / "cut.warc"
    p.write_bytes(whole[: len(whole) - 200])
    assert _reasons(_read(p)) == ["warc_request", "truncated_warc"]


def test_status_content_type_and_size_rejects(tmp_path):
    page = _page("A perfectly fine paragraph of text that is long enough to be kept by the extractor. " * 5).encode()
    p = tmp_path / "mixed.warc"
    p.write_bytes(
        _response("http://a.example/moved", b"", status="301 Moved Permanently", n=1)
        + _response("http://a.example/missing", page, status="404 Not Found", n=2)
        + _response("http://a.example/logo.png", b"\x89PNG\r\n\x1a\n" + bytes(200), "image/png", n=3)
        + _response("http://a.example/big", page * 50, n=4)
        + _response("http://a.example/ok", page, "application/xhtml+xml; charset=utf-8", n=5)
        + _warc_record("resource", "dns:a.example", b"a.example. 300 IN A 10.0.0.1", n=6)
    )
    rows = _read(p, extract_cfg=ExtractConfig(max_html_bytes=len(page) * 10))
    assert _reasons(rows) == ["http_status_301", "http_status_404", "warc_non_html", "html_too_large", None, "warc_non_html"]
    assert rows[4]["url"] == "http://a.example/ok"


def test_warc_with_only_request_records(tmp_path):
    p = tmp_path / "requests.warc.gz"
    p.write_bytes(gzip.compress(b"".join(_warc_record("request", f"http://a.example/{i}", n=i) for i in range(3))))
    rows = _read(p)
    assert _reasons(rows) == ["warc_request"] * 3 and [json.loads(r["meta"])["url"] for r in rows][0] == "http://a.example/0"


def test_gbk_page_without_charset_header_in_warc_and_as_file(tmp_path):
    body = _page(ZH * 4, head="<title>中国简介</title>").replace("Heading", "中国简介").encode("gbk")
    w = tmp_path / "gbk.warc"
    w.write_bytes(_response("http://zh.example/", body, "text/html", n=1))
    h = tmp_path / "gbk.html"
    h.write_bytes(body)
    for rows in (_read(w), _read(h, fmt="html")):
        assert _reasons(rows) == [None]
        assert ZH[:20] in rows[0]["text"] and rows[0]["title"] == "中国简介"
        assert json.loads(rows[0]["meta"])["charset"] in ("gbk", "gb18030")


def test_header_that_lies_about_the_charset(tmp_path):
    w = tmp_path / "lie.warc"
    w.write_bytes(_response("http://zh.example/", _page(ZH * 4).encode("gbk"), "text/html; charset=utf-8", n=1))
    assert ZH[:20] in _read(w)[0]["text"]


def test_invalid_utf8(tmp_path):
    junk = bytes([0x81, 0x8D, 0x8F, 0x90, 0x9D, 0xFF, 0xFE]) * 40  # no codec, not even cp1252, takes these
    bad = tmp_path / "bad.html"
    bad.write_bytes(_page("x").encode().replace(b"<p>x", b"<p>" + junk).replace(b"<head>", b'<head><meta charset="utf-8">'))
    stray = tmp_path / "stray.html"  # one stray byte in a long UTF-8 page: kept, like a browser keeps it
    stray.write_bytes(_page("Un café très agréable, près de la gare. " * 40).encode().replace(b"gare.", b"gare\xff.", 1))
    assert _reasons(_read(bad, fmt="html")) == ["invalid_encoding"]
    rows = _read(stray, fmt="html")
    assert _reasons(rows) == [None] and "café très agréable" in rows[0]["text"]
    assert json.loads(rows[0]["meta"])["decode_errors"] == 1


def test_zero_byte_files(tmp_path):
    for name, fmt in (("empty.html", "html"), ("empty.warc", "warc"), ("empty.warc.gz", "warc"), ("empty.warc.wet.gz", "wet")):
        (tmp_path / name).write_bytes(b"" if not name.endswith(".gz") else gzip.compress(b""))
        rows = _read(tmp_path / name, fmt=fmt)
        assert _reasons(rows) == ["empty_file"], name


def test_twenty_megabyte_one_line_html_is_rejected_unread(tmp_path):
    p = tmp_path / "huge.html"
    with open(p, "w") as f:
        f.write("<html><body><p>" + "word " * 4_000_000 + "</p></body></html>")  # 20 MB, no newline
    t0 = time.monotonic()
    rows = _read(p, fmt="html")
    assert _reasons(rows) == ["html_too_large"] and time.monotonic() - t0 < 5
    assert json.loads(rows[0]["meta"])["bytes"] > 20_000_000


def test_binary_content_named_html(tmp_path):
    png = tmp_path / "photo.html"
    png.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8)
    nuls = tmp_path / "nuls.html"
    nuls.write_bytes(b"<html>" + b"\x00\x01\x02 text " * 200)
    assert _reasons(_read(png, fmt="html")) == ["binary_content"]
    assert _reasons(_read(nuls, fmt="html")) == ["binary_content"]


def test_page_without_main_content_is_a_clean_reject(tmp_path):
    p = tmp_path / "empty_body.html"
    p.write_text("<html><head><title>Nothing</title></head><body><script>var x = 1;</script></body></html>")
    for extractor in ("trafilatura", "resiliparse"):
        rows = _read(p, fmt="html", extract_cfg=ExtractConfig(extractor=extractor))
        assert [(r["reject_stage"], r["reject_reason"]) for r in rows] == [("clean", "no_main_content")], extractor


def test_not_a_warc_is_an_unreadable_file(tmp_path):
    p = tmp_path / "page.warc"
    p.write_text(_page("this is HTML, not WARC"))
    rows = _read(p)
    assert _reasons(rows) == ["unreadable_file"] and "WARC" in rows[0]["text"]


def test_extract_config_reaches_the_read_tasks(ray_local, tmp_path):
    from sft_ray.config import RunConfig
    from sft_ray.ingest import list_inputs
    from sft_ray.staging import read_clean, units

    cfg = RunConfig.model_validate(
        {"output": str(tmp_path / "out"),
         "sources": [{"name": "w", "kind": "web", "format": "warc", "path": str(WHIRLWIND)}],
         "clean": {"extract": {"max_html_bytes": 1000}}}
    )
    rows = read_clean(cfg, units(cfg, list_inputs(cfg)))[0].take_all()
    assert sorted(r["reject_reason"] for r in rows) == ["html_too_large", "warc_metadata", "warc_request", "warc_warcinfo"]


@pytest.mark.parametrize("extractor", ["trafilatura", "resiliparse"])
def test_both_extractors_give_text_and_title(extractor):
    rows = _read(WHIRLWIND, extract_cfg=ExtractConfig(extractor=extractor))
    doc = rows[2]
    assert doc["reject_reason"] is None and "Escopete" in doc["title"] and len(doc["text"]) > 200
