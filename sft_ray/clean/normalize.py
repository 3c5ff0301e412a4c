"""Text repair and normalisation, then length bounds: the first link of the clean chain.

Order, and why:
1. **Mojibake repair** with ftfy (Speer 2019): UTF-8 read as Latin-1/cp1252 ("schÃ¶n" -> "schön"),
   HTML entities left in text ("&lt;" -> "<"). ftfy's width and quote fixes are off: they would
   rewrite fullwidth CJK punctuation and German/French typographic quotes, which are correct text.
   ftfy costs ~65 µs per document (measured on AG News); ASCII text without '&' cannot be
   mojibake or hold an entity, so it skips ftfy (most English text: 0.3 µs).
2. **Markup residue**: HTML tags that survived as text (AG News has `<A HREF=...>` after entity
   unescaping). Only tags with known HTML names are removed, so `a <b> c` prose survives.
3. **Control characters**: C0/C1 controls (except tab and newline) become spaces (they stand between
   words: "NUL\\x00byte" must not become "NULbyte"); a zero-width space between two words of a
   space-delimited script becomes a space and is removed elsewhere; BOM and bidi marks are removed.
   They break tokenisers and hide in duplicates. ZWJ/ZWNJ stay (Persian, Indic, emoji).
4. **NFC** so that visually identical strings compare and hash equal in dedup (Unicode TR15).
5. **Whitespace**: runs of spaces/tabs collapse to one space, lines are trimmed, 3+ newlines
   collapse to a paragraph break; line structure is kept because Gopher, C4 and FineWeb reason
   about lines.
6. **Boilerplate lines** (web kinds only by default): short navigation/sharing lines such as
   "Share on Facebook", "Skip to content", "Advertisement" (the line-level part of NeMo Curator's
   boilerplate heuristics and C4's line filters; policy/cookie lines are C4's `filter_policy`).
"""

from __future__ import annotations

import re
import unicodedata

import ftfy
import ftfy.fixes
import pyarrow as pa

from sft_ray import schema
from sft_ray.clean import changes
from sft_ray.clean.changes import BIT
from sft_ray.config import CleanConfig
from sft_ray.tags import live_mask, set_columns, tag

STAGE = "clean"
TEXT_COLUMNS = [schema.TEXT, schema.TITLE, schema.SRC_TEXT, schema.TGT_TEXT]

_SPACES = re.compile(r"[ \t\f\v\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
_MANY_NEWLINES = re.compile(r"\n{3,}")
# C0/C1 controls (tab, newline, CR and form feed are whitespace, handled below) stand between words
# when they stand in text at all ("NUL\x00byte" is two words): they become a space.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f]")
_C0 = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
# A zero-width space is an invisible word break: between two letters of a space-delimited script it
# becomes a space; in Thai, Lao, Khmer, Myanmar and CJK text (which put no spaces between words) and
# next to whitespace it is removed, as are BOM and bidi marks (they separate nothing).
_NO_SPACE_SCRIPTS = "\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef"
_ZWSP_BETWEEN_WORDS = re.compile(rf"(?<=[^\s{_NO_SPACE_SCRIPTS}])\u200b+(?=[^\s{_NO_SPACE_SCRIPTS}\u200b])")
_INVISIBLE = re.compile(r"[\u200b\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_HTML_TAG_NAMES = (
    "a|abbr|b|big|blockquote|body|br|center|code|div|em|font|h[1-6]|head|hr|html|i|img|li|link|meta|ol|p|pre"
    "|script|small|span|strike|strong|style|sub|sup|table|tbody|td|th|thead|tr|tt|u|ul"
)
# Attributes must look like name=value, so prose such as "a <b and c> d" is not a tag.
_ATTR = r"""\s+[\w:-]+\s*=\s*(?:"[^"<>]{0,500}"|'[^'<>]{0,500}'|[^\s"'<>]{1,500})"""
_HTML_TAG = re.compile(rf"</?(?:{_HTML_TAG_NAMES})(?:{_ATTR})*\s*/?>", re.IGNORECASE)
_BOILERPLATE = re.compile(
    r"^(?:"
    r"(?:share|tweet|pin|email)(?: this(?: article| story| page)?)?(?: on| via| to)? ?(?:facebook|twitter|x|linkedin|pinterest|whatsapp|reddit|e-?mail)?"
    r"|skip to (?:main )?(?:content|navigation)|jump to (?:navigation|search)"
    r"|advertisement|sponsored(?: content)?|read more|continue reading|click here.*|show more|load more"
    r"|subscribe(?: now| to our newsletter| for more)?|sign up(?: for our newsletter)?|log ?in|sign in|register"
    r"|follow us(?: on .*)?|related (?:articles|posts|stories)|back to top|print(?: this page)?"
    r"|all rights reserved\.?|(?:©|\(c\)|copyright) .{0,80}"
    r")[.!:|»›]*$",
    re.IGNORECASE,
)


def repair_text(text: str, cfg: CleanConfig) -> str:
    """Steps 1-3: mojibake and entities, markup residue, control characters."""
    return _repair(text, cfg)[0]


def _repair(text: str, cfg: CleanConfig) -> tuple[str, int]:
    """`repair_text`, and the bit mask of the steps that changed the text (clean/changes.py)."""
    # C0 before ftfy, which would delete them (joining the words around them); C1 after it, since
    # UTF-8 read as Latin-1 is made of C1 characters that ftfy turns back into text.
    mask = 0
    new = _C0.sub(" ", text)
    mask |= BIT["control"] if new != text else 0
    if cfg.fix_mojibake and not (new.isascii() and "&" not in new):
        text, new = new, ftfy.fix_text(new, uncurl_quotes=False, fix_character_width=False, normalization=None)
        if new != text:
            mask |= _ftfy_steps(text, new)
    if cfg.strip_markup and "<" in new:
        text, new = new, _HTML_TAG.sub(" ", new)
        mask |= BIT["markup"] if new != text else 0
    text = new
    new = _CONTROL.sub(" ", new)
    if "\u200b" in new:
        new = _ZWSP_BETWEEN_WORDS.sub(" ", new)
    new = _INVISIBLE.sub("", new)
    return new, mask | (BIT["control"] if new != text else 0)


def _ftfy_steps(text: str, fixed: str) -> int:
    """Which steps ftfy's change of `text` into `fixed` belongs to: its line-break fixes
    (whitespace), its control-character removal (control), and anything else, its decoding and
    entity fixes (mojibake). The first two are cheap functions of ftfy's, replayed here; only texts
    ftfy changed pay for them."""
    breaks = ftfy.fixes.fix_line_breaks(text)
    plain = ftfy.fixes.remove_control_chars(breaks)
    return ((BIT["whitespace"] if breaks != text else 0) | (BIT["control"] if plain != breaks else 0)
            | (BIT["mojibake"] if plain != fixed else 0))


def normalize_text(text: str | None) -> str | None:
    """Steps 4-5: NFC and whitespace."""
    return None if text is None else _normalize(text)[0]


def _normalize(text: str) -> tuple[str, int]:
    new = unicodedata.normalize("NFC", text)
    mask = BIT["nfc"] if new != text else 0
    text = new
    new = new.replace("\r\n", "\n").replace("\r", "\n")
    lines = [_SPACES.sub(" ", line).strip() for line in new.split("\n")]
    new = _MANY_NEWLINES.sub("\n\n", "\n".join(lines)).strip()
    return new, mask | (BIT["whitespace"] if new != text else 0)


def drop_boilerplate_lines(text: str, max_words: int) -> str:
    """Step 6: remove short lines that are navigation or sharing chrome, not content."""
    kept = [ln for ln in text.split("\n") if not (ln and len(ln.split()) <= max_words and _BOILERPLATE.match(ln))]
    return _MANY_NEWLINES.sub("\n\n", "\n".join(kept)).strip()


def clean_text(text: str | None, kind: str, cfg: CleanConfig) -> str | None:
    return None if text is None else clean_text_steps(text, kind, cfg)[0]


def clean_text_steps(text: str, kind: str, cfg: CleanConfig) -> tuple[str, int]:
    """Steps 1-6 on one text, and the bit mask of the steps that changed it (clean/changes.py)."""
    text, repaired = _repair(text, cfg)
    text, normalised = _normalize(text)
    mask = repaired | normalised
    if kind in cfg.boilerplate_kinds and text:
        new = drop_boilerplate_lines(text, cfg.boilerplate_max_words)
        mask |= BIT["boilerplate"] if new != text else 0
        text = new
    return text, mask


def length_reason(rec_kind: str, text: str | None, src: str | None, tgt: str | None, cfg: CleanConfig) -> str | None:
    if rec_kind == "translation":
        sides = [src or "", tgt or ""]
        if any(len(s) < cfg.pair_min_chars for s in sides):
            return "too_short"
        if any(len(s) > cfg.pair_max_chars for s in sides):
            return "too_long"
        return None
    n = len(text or "")
    if n < cfg.min_chars:
        return "too_short"
    if n > cfg.max_chars:
        return "too_long"
    return None


def normalize_batch(table: pa.Table, cfg: CleanConfig) -> pa.Table:
    """First link of `clean_batch`: repair and normalise live rows, tag length rejects, and record
    what normalisation changed (the trace columns of clean/changes.py)."""
    live = live_mask(table).to_pylist()
    kinds = table[schema.KIND].to_pylist()
    masks = [0] * table.num_rows
    before: dict[str, list] = {}
    if cfg.normalize:
        cols = {}
        for c in TEXT_COLUMNS:
            before[c] = values = table[c].to_pylist()
            out = []
            for i, (v, k, ok) in enumerate(zip(values, kinds, live)):
                if not ok or v is None:
                    out.append(v)
                    continue
                # Boilerplate lines are a property of page bodies, so only `text` loses them.
                new, mask = clean_text_steps(v, k if c == schema.TEXT else "", cfg)
                masks[i] |= mask
                out.append(new)
            cols[c] = out
        table = set_columns(table, cols)
    texts, srcs, tgts = (table[c].to_pylist() for c in (schema.TEXT, schema.SRC_TEXT, schema.TGT_TEXT))
    reasons = [length_reason(k, t, s, g, cfg) for k, t, s, g in zip(kinds, texts, srcs, tgts)]
    return changes.with_columns(tag(table, STAGE, reasons), masks, before)
