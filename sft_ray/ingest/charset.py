"""Bytes of a web page -> str, the way a browser would, or a reject reason.

Order (WHATWG "encoding sniffing", simplified): a byte-order mark wins; then the charset the
HTTP `Content-Type` declares; then `<meta charset>` / `<meta http-equiv content="...charset=">`
in the first 8 KiB; then detection over the bytes (resiliparse's `detect_encoding`, from the
toolkit FastWARC belongs to); UTF-8 last. Labels go through resiliparse's
`map_encoding_to_html5` so they mean what browsers mean (`gb2312` -> gbk, `iso-8859-1` ->
windows-1252). Each candidate is tried strictly and the first that decodes wins, so a page whose
header lies (GBK served as UTF-8) still comes out right, as in DataTrove's WarcReader (UTF-8, then
cchardet). A declared charset with a few stray bytes (<= 0.1% of characters become U+FFFD) is
kept as browsers keep it, rather than re-decoded as mojibake by a detector; so is the detected
charset when nothing decodes strictly.

Rejects: `binary_content` (an image/archive/PDF signature, or NUL/control bytes in more than 5% of
the first 8 KiB: the `max_unprintable` share resiliparse's `detect_mime` uses), `invalid_encoding`
(no candidate decodes).
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

BINARY_CONTENT = "binary_content"
INVALID_ENCODING = "invalid_encoding"

SNIFF_BYTES = 8192
MAX_CONTROL_SHARE = 0.05
MAX_REPLACEMENT_SHARE = 0.001

_BOMS = ((codecs.BOM_UTF8, "utf-8"), (codecs.BOM_UTF16_LE, "utf-16-le"), (codecs.BOM_UTF16_BE, "utf-16-be"))
# File signatures of formats that get served or saved as .html by mistake.
_MAGIC = (b"\x89PNG", b"GIF87a", b"GIF89a", b"\xff\xd8\xff", b"%PDF-", b"PK\x03\x04", b"\x1f\x8b", b"BZh",
          b"\x28\xb5\x2f\xfd", b"RIFF", b"\x00\x00\x01\x00", b"OggS", b"wOFF", b"wOF2", b"\x7fELF")
_CONTROL = bytes(b for b in range(32) if b not in b"\t\n\r\f\x0b\x1b")
_META_CHARSET = re.compile(rb"<meta[^>]{0,512}?charset\s*=\s*[\"']?\s*([a-zA-Z0-9_.:-]{1,40})", re.IGNORECASE)


@dataclass(frozen=True)
class Decoded:
    text: str
    charset: str  # the codec that produced `text`
    replaced: int = 0  # U+FFFD put in for undecodable bytes (declared charset kept leniently)


def looks_binary(data: bytes) -> bool:
    head = data[:SNIFF_BYTES]
    if head.startswith(_MAGIC):
        return True
    if not head:
        return False
    return len(head) - len(head.translate(None, _CONTROL)) > MAX_CONTROL_SHARE * len(head)


def _label(name: str | None) -> str | None:
    """An HTML5 encoding label -> a Python codec name, or None when unknown."""
    from resiliparse.parse.encoding import map_encoding_to_html5

    if not name:
        return None
    mapped = map_encoding_to_html5(name.strip().strip("\"'"), fallback_utf8=False)
    try:
        return codecs.lookup(mapped).name if mapped else None
    except LookupError:
        return None


def meta_charset(data: bytes) -> str | None:
    m = _META_CHARSET.search(data[:SNIFF_BYTES])
    return m.group(1).decode("ascii") if m else None


def decode_html(data: bytes, http_charset: str | None = None) -> Decoded | str:
    """Decoded page or `binary_content` / `invalid_encoding`."""
    for bom, enc in _BOMS:
        if data.startswith(bom):
            try:
                return Decoded(data[len(bom) :].decode(enc), enc)
            except UnicodeDecodeError:
                return INVALID_ENCODING
    if looks_binary(data):
        return BINARY_CONTENT
    declared = _label(http_charset) or _label(meta_charset(data))
    if declared:
        found = _strict(data, declared) or _lenient(data, declared)
        if found:
            return found
    from resiliparse.parse.encoding import detect_encoding

    detected = _label(detect_encoding(data))
    for enc in dict.fromkeys(e for e in (detected, "utf-8") if e and e != declared):
        found = _strict(data, enc)
        if found:
            return found
    return (detected and detected != declared and _lenient(data, detected)) or INVALID_ENCODING


def _strict(data: bytes, enc: str) -> Decoded | None:
    try:
        return Decoded(data.decode(enc), enc)
    except UnicodeDecodeError:
        return None


def _lenient(data: bytes, enc: str) -> Decoded | None:
    """A few stray bytes (<= 0.1% of characters) become U+FFFD, as in a browser."""
    text = data.decode(enc, errors="replace")
    bad = text.count("\ufffd")  # an upper bound: a literal U+FFFD in the page counts too
    return Decoded(text, enc, bad) if bad <= MAX_REPLACEMENT_SHARE * len(text) else None
