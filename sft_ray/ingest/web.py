"""Web readers: WARC / WET archives and single HTML files -> `Raw` documents or named rejects.

WARC is read with FastWARC's `ArchiveIterator` (Bevendorff et al. 2021, "FastWARC: optimizing
large-scale web archive analytics"; much faster than warcio, which DataTrove's `WarcReader` uses)
over an fsspec stream, so any URL and `.gz`/`.zst` work and memory
stays one record. Which records are documents follows DataTrove's `process_record`: `response`
(and `resource`) records with an HTML payload in WARC files, `conversion` records in WET files.
Unlike DataTrove, nothing is skipped silently (docs/ARCHITECTURE.md, principle 2): every other record becomes
a reject named after its type (`warc_request`, `warc_metadata`, `warc_revisit`, `warc_warcinfo`,
...), so the manifest accounts for every record of the archive. Each HTML page is decoded
(sft_ray/ingest/charset.py) and its main content extracted (sft_ray/clean/extract.py) right here,
in the read task, so raw HTML never enters Ray's object store.

Rejects, stage `ingest`: `warc_<type>`, `warc_non_html`, `http_status_<code>`, `html_too_large`
(payload over `clean.extract.max_html_bytes`: never decoded or parsed), `binary_content`,
`invalid_encoding`, `empty_text`, `empty_file`, `no_warc_records`, `truncated_warc` (the archive
ends mid-record: the cut record is rejected, those before it kept). Stage `clean`: `no_main_content`,
`extraction_error` (extraction is the first cleaning step; only the reading happens here).
A WARC that is not a WARC (or is corrupt mid-file) ends as one `unreadable_file` reject from
`read_items`, after the records read so far.
"""

from __future__ import annotations

from typing import Any, Iterator

import fsspec

from sft_ray.clean.extract import Extracted, extract
from sft_ray.config import ExtractConfig
from sft_ray.ingest.charset import Decoded, decode_html
from sft_ray.ingest.formats import Raw

HTML_TYPES = ("text/html", "application/xhtml+xml")
EXTRACT_STAGE = "clean"


class _Stream:
    """What FastWARC reads from: an fsspec file that turns a truncated compressed stream into EOF.

    gzip raises EOFError at the cut; FastWARC's own gzip reader would stop silently instead. We
    note it (so the cut record is rejected `truncated_warc`) and end the stream, which keeps every
    record before the cut. `read1` returns what was decompressed before the error instead of
    losing a whole buffer of records with it."""

    def __init__(self, f):
        self._read = getattr(f, "read1", f.read)
        self.pos = 0
        self.truncated = False

    def read(self, size: int = -1) -> bytes:
        if self.truncated:
            return b""
        try:
            data = self._read(size)
        except EOFError:
            self.truncated = True
            return b""
        self.pos += len(data)
        return data

    def tell(self) -> int:
        return self.pos

    def close(self) -> None:
        pass


def _document(html_or_text: str, url: str | None, title: str | None, meta: dict[str, Any]) -> Raw:
    meta = {k: v for k, v in meta.items() if k != "url"}  # the url has its own column
    return Raw(0, {"text": html_or_text, "title": title, "url": url}, meta=meta)


def _page(payload: bytes, http_charset: str | None, url: str | None, cfg: ExtractConfig, meta: dict) -> Raw:
    """Bytes of one HTML page -> an extracted document or a reject."""
    decoded = decode_html(payload, http_charset)
    if not isinstance(decoded, Decoded):
        return Raw(0, None, decoded, url or "", meta=meta)
    meta = {**meta, "charset": decoded.charset, **({"decode_errors": decoded.replaced} if decoded.replaced else {})}
    out = extract(decoded.text, url, cfg)
    if not isinstance(out, Extracted):
        return Raw(0, None, out, url or "", meta=meta, stage=EXTRACT_STAGE)
    if out.date:
        meta["date"] = out.date
    return _document(out.text, url, out.title, meta)


def _mime(content_type: str | None) -> str | None:
    return content_type.split(";", 1)[0].strip().lower() if content_type else None


def _sniff_html(payload: bytes) -> bool:
    head = payload[:1024].lstrip().lower()
    return head.startswith((b"<!doctype html", b"<html")) or b"<html" in head


def _warc_record(rec, fmt: str, cfg: ExtractConfig) -> Raw:
    """One record -> a document or a reject; `truncated_warc` when its payload is cut short."""
    from fastwarc.warc import WarcRecordType as T

    h = rec.headers
    url = h.get("WARC-Target-URI")
    rtype = rec.record_type
    meta: dict[str, Any] = {"url": url, "warc_record_id": h.get("WARC-Record-ID"), "warc_date": h.get("WARC-Date")}
    meta = {k: v for k, v in meta.items() if v}
    if "warc_date" in meta:
        meta["date"] = meta["warc_date"]  # the page's own date, when extraction finds one, replaces it
    wanted = (T.conversion,) if fmt == "wet" else (T.response, T.resource)
    if rtype not in wanted:
        return Raw(0, None, f"warc_{str(rtype).lower()}", url or h.get("WARC-Record-ID") or "", meta=meta)
    if rtype == T.response and rec.is_http:
        status = rec.http_headers.status_code
        if status != 200:
            meta["http_status"] = status
            return Raw(0, None, f"http_status_{status if status is not None else 'unknown'}", url or "", meta=meta)
    if rec.content_length > cfg.max_html_bytes:
        meta["bytes"] = rec.content_length
        return Raw(0, None, "html_too_large", url or "", meta=meta)
    payload = rec.reader.read(cfg.max_html_bytes + 1)  # capped: Content-Encoding may inflate it
    if len(payload) > cfg.max_html_bytes:
        return Raw(0, None, "html_too_large", url or "", meta=meta)
    if _is_short(rec, len(payload)):
        return _truncated(Raw(0, None, None, meta=meta), "record shorter than its Content-Length")
    if rtype == T.conversion:  # WET: already plain text (UTF-8 in Common Crawl)
        decoded = decode_html(payload, "utf-8")
        if not isinstance(decoded, Decoded):
            return Raw(0, None, decoded, url or "", meta=meta)
        text = decoded.text.strip()
        return _document(text, url, None, meta) if text else Raw(0, None, "empty_text", url or "", meta=meta)
    if rec.is_http:
        content_type, charset = rec.http_content_type, rec.http_charset
    else:  # a resource record: the WARC header describes the block itself
        content_type, charset = h.get("Content-Type"), None
    mime = _mime(content_type) or _mime(h.get("WARC-Identified-Payload-Type"))
    if mime not in HTML_TYPES and not (mime is None and _sniff_html(payload)):
        meta["content_type"] = content_type
        return Raw(0, None, "warc_non_html", url or "", meta=meta)
    return _page(payload, charset, url, cfg, meta)


def _encoded(rec) -> bool:
    """HTTP transfer/content encoding: the payload read differs in length from Content-Length."""
    return rec.is_http and bool(rec.http_headers.get("Transfer-Encoding") or rec.http_headers.get("Content-Encoding"))


def _is_short(rec, payload_len: int) -> bool:
    """Fewer payload bytes than Content-Length promised: the archive was cut inside this record."""
    return not _encoded(rec) and payload_len < rec.content_length


def _truncated(raw: Raw, why: str) -> Raw:
    meta = {**(raw.meta or {}), "error": why}
    return Raw(raw.position, None, "truncated_warc", meta.get("url", ""), meta=meta)


def read_warc(url: str, storage_options: dict, fmt: str, cfg: ExtractConfig) -> Iterator[Raw]:
    """One `Raw` per WARC record, in file order (`position` = record number, 1-based).

    A record is emitted only once the next one has been read: when the compressed stream then
    turns out to end mid-record, the last record FastWARC parsed is the one cut (with a partial
    WARC or HTTP header or payload), and becomes `truncated_warc` instead of a short document."""
    from fastwarc.warc import ArchiveIterator

    with fsspec.open(url, "rb", compression="infer", **storage_options) as f:
        stream = _Stream(f)
        pending: Raw | None = None
        n = 0
        try:
            for n, rec in enumerate(ArchiveIterator(stream, parse_http=True, auto_decode="all"), start=1):
                raw = _warc_record(rec, fmt, cfg)
                raw.position = n
                rec.reader.consume()
                if raw.reason != "truncated_warc" and _is_short(rec, rec.reader.tell()):
                    raw = _truncated(raw, "record shorter than its Content-Length")
                if pending is not None:
                    yield pending
                pending = raw
        except Exception:
            if pending is not None:
                yield pending
            raise
        except BaseException as e:  # a Rust panic in FastWARC is a BaseException: make it a file error
            if type(e).__name__ != "PanicException":
                raise
            if pending is not None:
                yield pending
            raise RuntimeError(f"fastwarc failed: {e}") from None
        if stream.truncated:
            why = "compressed stream ends mid-record"
            if pending is None:
                yield Raw(1, None, "truncated_warc", url, meta={"error": why})
            else:
                yield pending if pending.reason == "truncated_warc" else _truncated(pending, why)
        elif pending is not None:
            yield pending
        else:  # nothing at all, or only bytes FastWARC found no record in
            yield Raw(0, None, "empty_file" if stream.pos == 0 else "no_warc_records", url)


def read_html(url: str, storage_options: dict, size: int, cfg: ExtractConfig) -> Iterator[Raw]:
    """One HTML file = one page; `url` is the file's URL. Files over `max_html_bytes` (by listed
    size, so a 20 MB one-line page is never read) are rejected unread."""
    if size > cfg.max_html_bytes:
        yield Raw(1, None, "html_too_large", url, meta={"bytes": size})
        return
    with fsspec.open(url, "rb", compression="infer", **storage_options) as f:
        payload = f.read(cfg.max_html_bytes + 1)
    if not payload:
        yield Raw(1, None, "empty_file", url)
        return
    if len(payload) > cfg.max_html_bytes:  # a compressed file that inflates past the cap
        yield Raw(1, None, "html_too_large", url)
        return
    raw = _page(payload, None, url, cfg, {})
    raw.position = 1
    yield raw
