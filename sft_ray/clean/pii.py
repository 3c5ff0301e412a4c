"""PII redaction: emails, phone numbers, public IPs, payment cards, IBANs and US SSNs -> placeholders.

Regex candidates, then a validator per type, so that a pattern alone never decides. Redaction never
rejects a record: it rewrites text columns and counts what it replaced in the `pii` column.

Where the rules come from:
- Overall shape (regex + validators, placeholders, private IPs left alone, date / version screens):
  the BigScience ROOTS PII pipeline (bigscience-workshop/data-preparation,
  `preprocessing/training/02_pii/bigscience_pii_detect_redact.py`) as adapted for StarCoder
  (bigcode-project/bigcode-dataset, `pii/utils/emails_ip_addresses_detection.py`, placeholders
  `<EMAIL>`, `<IP_ADDRESS>`), and Microsoft Presidio's pattern recognizers
  (`presidio_analyzer/predefined_recognizers/`: credit card, IBAN, US SSN, IP, phone), whose
  validation / invalidation rules are reused below.
- Email: RFC 5322 section 3.4.1 `addr-spec` with a dot-atom local part (no quoted strings, no
  comments, no IP-literal domains: "RFC-5322-lite"), domain labels per RFC 1035 section 2.3.1,
  IDNA TLDs in their ASCII form (`xn--`, RFC 3492).
- IP: candidates validated by Python's `ipaddress`; only public addresses are redacted (as in
  BigScience/StarCoder, which keep private ones): `is_global` (IANA special-purpose registries,
  RFC 6890) minus multicast and reserved space, so IPv6 must be in global unicast 2000::/3
  (RFC 4291). IPv4-mapped IPv6 is judged by its IPv4 address. Four single-digit octets (`1.2.3.4`)
  are usually version numbers: kept unless "dns", "server" or "ip" is nearby (StarCoder's
  `filter_versions`).
- Payment cards: 12-19 digits (ISO/IEC 7812), optionally grouped 4-4-4-4(-3) or 4-6-4/5 with one
  kind of separator, a known issuer prefix with a length that issuer uses (ISO/IEC 7812 IIN table as
  summarised in Wikipedia "Payment card number"), and the Luhn checksum (ISO/IEC 7812-1 annex B;
  Presidio `CreditCardRecognizer.validate_result`).
- IBAN: ISO 13616-1:2020 structure (country code, 2 check digits, BBAN), the per-country length of
  the SWIFT IBAN Registry, the ISO 7064 MOD 97-10 check, print format in groups of 4 allowed.
- US SSN: AAA-GG-SSSS with one separator (dash, space or dot); areas 000, 666 and 900-999, group 00
  and serial 0000 are never assigned (SSA, "Social Security Number Randomization", 2011, and
  POMS RM 10201.035); numbers SSA voided after publication (078-05-1120, the 1938 Woolworth wallet
  card; 219-09-9999, a 1940 SSA pamphlet), 123-45-6789 and one repeated digit are samples, not
  people (the sample list of Presidio `UsSsnRecognizer.invalidate_result`). Nine bare digits
  count only with an SSN keyword just before them (Presidio's context words), to keep precision.
- Phone: E.164 bounds (ITU-T E.164: at most 15 digits; 7 is the shortest national subscriber
  number we accept). Shapes that are phone numbers almost by construction are taken anywhere:
  international `+CC ...` or `00CC ...`, NANP `(AAA) EEE-NNNN` / `AAA-EEE-NNNN` (ITU-T E.164 NANP
  annex), national numbers with a trunk `0` in groups, a parenthesised area code, four or more
  dashed/dotted pairs. Other digit groups (`467 3395`, `5403926876`) are phone numbers only next
  to a phone keyword (Presidio's context words: phone, tel, mobile, fax, call, ...). Dates, year
  ranges, dotted quads, ISBN-like groupings, prices and numbers glued to words are never phones.
  `phonenumbers` (Presidio's PhoneRecognizer) was measured and not used: see benchmarks/pii_eval.py.
- Mainland China mobile numbers (`cn_mobile`, placeholder `<PHONE>`): 11 digits 1[3-9]X XXXX XXXX
  (MIIT numbering plan: mobile blocks 13x-19x), bare or grouped 3-4-4 by spaces or hyphens,
  optionally after +86 / 0086 / 86.
- Resident identity card numbers (`cn_id`, `<CN_ID>`): GB 11643-1999, 18 characters: a 6-digit
  region code (first digit 1-8), a valid birth date YYYYMMDD (1800-2099), a 3-digit sequence and
  the ISO 7064 MOD 11-2 check character (0-9 or X).
- Chinese text puts digits right against Han characters ("手机13812345678"), where `\w` look-arounds
  see no boundary: candidates are found in a copy of the text with every Han, kana, Hangul and CJK
  punctuation character replaced by NUL (same length, so spans carry over), which gives bank
  cards (UnionPay 62, Luhn), E.164 `+CC` numbers and the rest the same boundaries as in English.
  Measured on generated formats mixed into XQuAD zh paragraphs: benchmarks/pii_zh.py.
"""

from __future__ import annotations

import bisect
import datetime
import ipaddress
import json
import re
from typing import NamedTuple

import pyarrow as pa

from sft_ray import schema
from sft_ray.config import PiiConfig
from sft_ray.tags import live_mask, set_columns

TEXT_COLUMNS = [schema.TEXT, schema.TITLE, schema.SRC_TEXT, schema.TGT_TEXT]
PLACEHOLDERS = {
    "email": "EMAIL",
    "phone": "PHONE",
    "ip": "IP_ADDRESS",
    "credit_card": "CREDIT_CARD",
    "iban": "IBAN",
    "ssn": "SSN",
    "cn_mobile": "PHONE",
    "cn_id": "CN_ID",
}
ALL_TYPES = tuple(PLACEHOLDERS)
_TYPE_SET = frozenset(ALL_TYPES)
# Earlier types win overlaps: the ones with checksums or unambiguous syntax come before phone.
_PRIORITY = ("email", "ip", "iban", "cn_id", "credit_card", "ssn", "cn_mobile", "phone")


class Span(NamedTuple):
    start: int
    end: int
    type: str  # one of PLACEHOLDERS' keys


# --- email (RFC 5322 dot-atom local part @ RFC 1035 host name) --------------------------------------
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]"
_EMAIL = re.compile(
    rf"(?<![\w.@+-]){_ATEXT}+(?:\.{_ATEXT}+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?:[A-Za-z]{2,63}|xn--[A-Za-z0-9-]{1,59})"
    r"(?![\w@-]|\.[A-Za-z0-9])"
)

# --- IP -----------------------------------------------------------------------------------------
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?<![\w.-]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\d)")
# Hex/colon/dot runs with at least two colons (optionally a %zone); ipaddress decides validity.
_IPV6 = re.compile(r"(?<![\w:.%])(?=[0-9A-Fa-f.]*:[0-9A-Fa-f.]*:)[0-9A-Fa-f:.]{2,45}(?:%[\w.]+)?")
_VERSION_SHAPE = re.compile(r"\d\.\d\.\d\.\d")
_IP_CONTEXT = re.compile(r"(?i)\b(?:dns|server|ip|host|address)\b")

# --- payment cards --------------------------------------------------------------------------------
_CARD = re.compile(
    r"(?<![\w.,+/-])"
    r"(?:\d{4}(?P<s1>[ -])\d{4}(?P=s1)\d{4}(?P=s1)\d{1,4}(?:(?P=s1)\d{3})?"  # 4-4-4-4(-3)
    r"|\d{4}(?P<s2>[ -])\d{6}(?P=s2)\d{4,5}"  # Amex 4-6-5, Diners 4-6-4
    r"|\d{12,19})"
    r"(?!\w|[.,/-]\d)"
)
# Issuer table of ISO/IEC 7812 IINs (as summarised in Wikipedia "Payment card number"): a number is
# a card only if its first k digits fall in `prefixes` and its length is one that issuer uses.
_LEN_16_19 = tuple(range(16, 20))
_IIN: tuple[tuple[int, range, tuple[int, ...]], ...] = (
    # (k, prefixes, lengths)
    (1, range(4, 5), (13, 16, 19)),  # Visa
    (2, range(51, 56), (16,)),  # Mastercard
    (4, range(2221, 2721), (16,)),  # Mastercard 2-series
    (2, range(34, 35), (15,)),  # American Express
    (2, range(37, 38), (15,)),
    (3, range(300, 306), (14, 15, *_LEN_16_19)),  # Diners Club
    (4, range(3095, 3096), (14, 15, *_LEN_16_19)),
    (2, range(36, 37), (14, 15, *_LEN_16_19)),
    (2, range(38, 40), _LEN_16_19),
    (4, range(6011, 6012), _LEN_16_19),  # Discover
    (3, range(644, 650), _LEN_16_19),
    (2, range(65, 66), _LEN_16_19),
    (4, range(3528, 3590), _LEN_16_19),  # JCB
    (4, range(1800, 1801), (15,)),  # JCB (legacy 15-digit)
    (4, range(2131, 2132), (15,)),
    (2, range(62, 63), _LEN_16_19),  # UnionPay
    (4, range(2200, 2205), _LEN_16_19),  # Mir
    (2, range(50, 51), tuple(range(12, 20))),  # Maestro, Dankort, Verve
    (2, range(56, 70), tuple(range(12, 20))),  # Maestro, RuPay, InstaPayment, ...
    (1, range(1, 2), (15,)),  # UATP
)

# --- IBAN -----------------------------------------------------------------------------------------
# Total IBAN length per country, SWIFT IBAN Registry (ISO 13616 registration authority); equal to
# python-stdnum's copy of the registry (stdnum/iban.dat) when written.
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BI": 27,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DJ": 27, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HN": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21,
    "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27, "MT": 31, "MU": 30, "NI": 28,
    "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "RU": 33, "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
_IBAN = re.compile(r"(?<![\w-])[A-Za-z]{2}\d{2}(?: ?[A-Za-z0-9]{4}){2,7}(?: ?[A-Za-z0-9]{1,3})?(?!\w)")

# --- US SSN ---------------------------------------------------------------------------------------
_SSN = re.compile(
    r"(?<![\w.,+/-])(?!000|666|9)\d{3}(?P<sep>[- .])(?!00)\d{2}(?P=sep)(?!0000)\d{4}(?!\w|[.,/-]\d)"
)
_SSN_BARE = re.compile(r"(?<![\w.,+/-])(?!000|666|9)\d{3}(?!00)\d{2}(?!0000)\d{4}(?!\w|[.,/-]\d)")
_SSN_CONTEXT = re.compile(r"(?i)(?:\bssns?\b|social[ -]security|\bss ?(?:#|no\b|number))")
_SSN_SAMPLES = frozenset({"078051120", "219099999", "123456789"})

# --- phone ----------------------------------------------------------------------------------------
_PHONE = re.compile(
    r"(?<![\w+#$€£¥/@&=])(?<!\d[.,-])(?<![A-Za-z]-)"
    r"(?:\+\d{1,3}[ .-]?(?:\(\d{1,4}\)[ .-]?)?|\(\d{1,5}\)[ .-]?)?"
    r"\d{1,12}(?:[ .-]\d{1,12}){0,6}"
    r"(?:[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6})?"
    r"(?![\w@%€$£¥]|[.,/:-]\d)"
)
_PHONE_EXT = re.compile(r"[ ]?(?:x|ext\.?|extension)[ ]?\d{1,6}$")
_NANP = re.compile(r"(?:\+?1[ .-]?)?(?:\(\d{3}\)[ .-]?\d{3}[ .-]\d{4}|\d{3}(?P<s>[.-])\d{3}(?P=s)\d{4})")
_INTL_00 = re.compile(r"00\d{1,3}[ .-]")  # international call prefix, e.g. 001-518-640-0854 from abroad
_TRUNK = re.compile(r"0\d{1,4}(?P<s>[ .-])\d{2,8}(?:(?P=s)\d{2,8}){0,4}")
_PAREN_AREA = re.compile(r"\((?!1[89]\d\d\)|20\d\d\))\d{1,5}\)[ .-]?\d{2,8}(?:[ .-]\d{2,8}){0,3}")
_WEAK = re.compile(r"\d{2,12}(?:(?P<s>[ .-])\d{2,12}(?:(?P=s)\d{2,12}){0,3})?")
_DATE = re.compile(
    r"(?:1[89]|20)\d\d(?P<s>[ .-])[01]?\d(?P=s)[0-3]?\d"  # yyyy-mm-dd
    r"|[0-3]?\d(?P<t>[ .-])[0-3]?\d(?P=t)(?:1[89]|20)\d\d"  # dd-mm-yyyy, mm-dd-yyyy
)
_YEAR_RANGE = re.compile(r"(?:1\d|20)\d\d[ .-](?:1\d|20)\d\d")  # 1629-1631, 1990-2000
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|telephone|tel|mobile|cell|cellphone|fax|call|called|calling|dial|whatsapp|sms|"
    r"hotline|landline|office|desk|contact|reach|ph|mob|t[eé]l[eé]fono|telefone|t[eé]l[eé]phone|telefon|handy)\b"
    r"|电话|電話|手机|手機|携帯"
)
_NOT_PHONE_CONTEXT = re.compile(r"(?i)\b(?:isbn|issn|doi|arxiv|pmid)\b[^\n]{0,12}$")
_DOTTED_QUAD = re.compile(r"\d{1,3}(?:\.\d{1,3}){3}")  # an IPv4 shape, valid or not, is not a phone
_SSN_SHAPE = re.compile(r"\d{3}(?P<s>[ .-])\d{2}(?P=s)\d{4}")  # left to the SSN validator


_NON_DIGIT = re.compile(r"\D")

# --- China: mobile numbers, resident identity cards, and boundaries in CJK text ---------------------
_CN_MOBILE = re.compile(r"(?<![\w+.,/-])(?:(?:\+|00)?86[ -]?)?1[3-9]\d(?P<s>[ -]?)\d{4}(?P=s)\d{4}(?![\w@%]|[.,/:-]\d)")
_CN_ID = re.compile(
    r"(?<![\w.,+/-])[1-8]\d{5}(?P<s> ?)(?:18|19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])(?P=s)\d{3}[\dXx](?!\w|[.,/-]\d)"
)
_CN_ID_WEIGHTS = tuple(pow(2, 17 - i, 11) for i in range(17))
# Han (with radicals, CJK symbols and punctuation, extension A), kana, Hangul, CJK compatibility
# ideographs, full-width punctuation (not the full-width digits and letters) and the supplementary ideographs.
_CJK_CHAR = re.compile(
    "[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff01-\uff0f\uff1a-\uff20\uff3b-\uff40\uff5b-\uff65\U00020000-\U0003134f]"
)


def _cn_id_ok(cand: str) -> bool:
    """GB 11643-1999: a real birth date and the ISO 7064 MOD 11-2 check character."""
    s = cand.replace(" ", "").upper()
    try:
        datetime.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    check = (12 - sum(int(c) * w for c, w in zip(s[:17], _CN_ID_WEIGHTS)) % 11) % 11
    return s[17] == ("X" if check == 10 else str(check))


_CJK_CLAUSE_END = re.compile("[。！？；]")


def _cjk_spaced(text: str) -> str:
    """`text` with CJK characters replaced by NUL (same length): digits next to Han get a boundary that
    no pattern reads as part of a number, nor as a group separator (a space would join "2733；1943")."""
    return text if text.isascii() else _CJK_CHAR.sub("\x00", text)


def _count_digits(text: str) -> int:
    return sum(map(text.count, "0123456789"))


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _card_ok(digits: str) -> bool:
    n = len(digits)
    if digits == digits[0] * n:
        return False
    issuer = any(int(digits[:k]) in prefixes and n in lengths for k, prefixes, lengths in _IIN)
    return issuer and _luhn_ok(digits)


def _iban_span(m: re.Match) -> tuple[int, int] | None:
    """(start, end) of a valid IBAN at the start of the candidate, or None."""
    cand = m.group(0)
    if not (cand.isupper() or cand.islower()):
        return None
    length = IBAN_LENGTHS.get(cand[:2].upper())
    if length is None:
        return None
    seen = 0
    for end, ch in enumerate(cand, 1):
        if ch != " ":
            seen += 1
            if seen == length:
                break
    else:
        return None
    if end < len(cand) and cand[end] != " ":  # the registry length must end on a group boundary
        return None
    iban = cand[:end].replace(" ", "").upper()
    rearranged = iban[4:] + iban[:4]
    if int("".join(str(int(c, 36)) for c in rearranged)) % 97 != 1:
        return None
    return m.start(), m.start() + end


def _public_ip(addr: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    return addr.is_global and not addr.is_multicast and not addr.is_reserved


def _ipv6_spans(text: str) -> list[tuple[int, int]]:
    out = []
    for m in _IPV6.finditer(text):
        cand, start = m.group(0), m.start()
        cand = cand.rstrip(".")
        end = start + len(cand)
        if end < len(text) and (text[end].isalnum() or text[end] == "_"):
            continue
        try:
            addr = ipaddress.IPv6Address(cand)
        except ValueError:
            continue
        if _public_ip(addr):
            out.append((start, end))
    return out


def _ipv4_spans(spaced: str, text: str) -> list[tuple[int, int]]:
    out = []
    for m in _IPV4.finditer(spaced):
        cand = m.group(0)
        if _VERSION_SHAPE.fullmatch(cand) and not _IP_CONTEXT.search(text, max(0, m.start() - 40), m.end() + 40):
            continue
        if _public_ip(ipaddress.IPv4Address(cand)):
            out.append(m.span())
    return out


def _phone_ok(text: str, m: re.Match) -> bool:
    cand = m.group(0)
    main = _PHONE_EXT.sub("", cand)
    n = _count_digits(main)
    if not 7 <= n <= 15:
        return False
    if _NOT_PHONE_CONTEXT.search(text, max(0, m.start() - 20), m.start()):
        return False
    if main.startswith("+"):
        return n >= 8
    if any(p.fullmatch(main) for p in (_DATE, _YEAR_RANGE, _DOTTED_QUAD, _SSN_SHAPE)):
        return False
    if n >= 10 and _INTL_00.match(main):
        return True
    if _NANP.fullmatch(main) or (n >= 9 and _TRUNK.fullmatch(main)) or _PAREN_AREA.fullmatch(main):
        return True
    if not _WEAK.fullmatch(main):  # single-digit groups, mixed separators: ISBNs, amounts, versions
        return False
    # Weak shapes need a phone keyword in the 40 characters before or the 12 after ("Phone: 467 3395",
    # "781 1704 office"), as Presidio's context enhancer does.
    lo = max(0, m.start() - 40)
    if not text.isascii():  # a keyword before 。 or ； belongs to the previous clause, one after to the next
        lo = max([lo] + [k.end() for k in _CJK_CLAUSE_END.finditer(text, lo, m.start())])
    before = _PHONE_CONTEXT.search(text, lo, m.start())
    after = _CJK_CLAUSE_END.search(text, m.end(), m.end() + 12)
    return bool(before or _PHONE_CONTEXT.search(text, m.end(), after.start() if after else m.end() + 12))


def _candidates(text: str, kind: str, n_digits: int, spaced: str | None = None) -> list[tuple[int, int]]:
    """Validated spans of one type. Patterns run over `spaced` (`_cjk_spaced(text)`), contexts over `text`."""
    spaced = text if spaced is None else spaced
    if kind == "cn_mobile":
        return [m.span() for m in _CN_MOBILE.finditer(spaced)] if n_digits >= 11 else []
    if kind == "cn_id":
        return [m.span() for m in _CN_ID.finditer(spaced) if _cn_id_ok(m.group(0))] if n_digits >= 17 else []
    if kind == "email":
        return [m.span() for m in _EMAIL.finditer(text)] if "@" in text else []
    if kind == "ip":
        spans = _ipv6_spans(text) if text.count(":") >= 2 else []
        return spans + (_ipv4_spans(spaced, text) if n_digits >= 4 and "." in text else [])
    if kind == "iban":
        return [s for m in _IBAN.finditer(spaced) if (s := _iban_span(m))] if n_digits >= 7 else []
    if kind == "credit_card":
        if n_digits < 12:
            return []
        return [m.span() for m in _CARD.finditer(spaced) if _card_ok(_NON_DIGIT.sub("", m.group(0)))]
    if kind == "ssn":
        if n_digits < 9:
            return []
        spans = [m.span() for m in _SSN.finditer(spaced) if _ssn_ok(m.group(0))]
        for m in _SSN_BARE.finditer(spaced):
            if _ssn_ok(m.group(0)) and _SSN_CONTEXT.search(text, max(0, m.start() - 40), m.start()):
                spans.append(m.span())
        return spans
    if kind == "phone":
        return [m.span() for m in _PHONE.finditer(spaced) if _phone_ok(text, m)] if n_digits >= 7 else []
    raise ValueError(f"unknown PII type {kind!r}; expected one of {list(ALL_TYPES)}")


def _ssn_ok(cand: str) -> bool:
    digits = _NON_DIGIT.sub("", cand)
    return digits not in _SSN_SAMPLES and digits != digits[0] * 9


def find(text: str, types: list[str] | tuple[str, ...] = ALL_TYPES) -> list[Span]:
    """Non-overlapping PII spans in text order; on overlap the type earlier in `_PRIORITY` wins."""
    wanted = set(types)
    if not wanted <= _TYPE_SET:
        raise ValueError(f"unknown PII type(s) {sorted(wanted - _TYPE_SET)}; expected some of {list(ALL_TYPES)}")
    if not text:
        return []
    n_digits = _count_digits(text)
    if n_digits < 4 and "@" not in text and "::" not in text:  # cheap exit for most prose
        return []
    taken: list[Span] = []  # sorted by start, non-overlapping
    spaced = _cjk_spaced(text)
    for kind in _PRIORITY:
        if kind not in wanted:
            continue
        for start, end in _candidates(text, kind, n_digits, spaced):
            i = bisect.bisect_left(taken, (start,))
            if (i == 0 or taken[i - 1].end <= start) and (i == len(taken) or end <= taken[i].start):
                taken.insert(i, Span(start, end, kind))
    return taken


def redact(text: str, types: list[str] | tuple[str, ...] = ALL_TYPES) -> tuple[str, dict[str, int]]:
    """(text with `<EMAIL>`-style placeholders, {placeholder name: count})."""
    spans = find(text, types)
    if not spans:
        return text, {}
    parts, counts, pos = [], {}, 0
    for s in spans:
        name = PLACEHOLDERS[s.type]
        parts += [text[pos : s.start], f"<{name}>"]
        counts[name] = counts.get(name, 0) + 1
        pos = s.end
    parts.append(text[pos:])
    return "".join(parts), counts


def redact_batch(table: pa.Table, cfg: PiiConfig) -> pa.Table:
    """Ray Data UDF link: redact text columns of live rows of `cfg.kinds`; `pii` gets the counts.

    Counts from all text columns of a row are summed into one JSON object (keys sorted); rows with
    nothing redacted keep their `pii` value (null unless an earlier pass filled it). Never tags.
    """
    if not cfg.enabled or not cfg.types or table.num_rows == 0:
        return table
    schema.require_columns(table, [schema.KIND, schema.PII, schema.REJECT_REASON], "clean.pii")
    live = live_mask(table).to_pylist()
    kinds = table[schema.KIND].to_pylist()
    todo = [ok and k in cfg.kinds for ok, k in zip(live, kinds)]
    if not any(todo):
        return table
    types = tuple(cfg.types)
    pii = table[schema.PII].to_pylist()
    totals: list[dict[str, int]] = [{} for _ in todo]
    cols = {}
    for c in (c for c in TEXT_COLUMNS if c in table.column_names):
        values, changed = table[c].to_pylist(), False
        for i, (ok, v) in enumerate(zip(todo, values)):
            if ok and v:
                new, counts = redact(v, types)
                if counts:
                    values[i], changed = new, True
                    for name, k in counts.items():
                        totals[i][name] = totals[i].get(name, 0) + k
        if changed:
            cols[c] = values
    if not cols:
        return table
    for i, counts in enumerate(totals):
        if counts:
            merged = json.loads(pii[i]) if pii[i] else {}
            for name, k in counts.items():
                merged[name] = merged.get(name, 0) + k
            pii[i] = json.dumps(merged, sort_keys=True)
    return set_columns(table, {**cols, schema.PII: pii})
