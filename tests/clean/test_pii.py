"""PII redaction: each type found and replaced, near-misses left alone, counts, the batch link."""

from __future__ import annotations

import json

import pytest

from sft_ray import schema
from sft_ray.clean.pii import Span, find, redact, redact_batch
from sft_ray.config import PiiConfig


def spans_of(text: str, types=None) -> list[tuple[str, str]]:
    return [(s.type, text[s.start : s.end]) for s in (find(text, types) if types else find(text))]


@pytest.mark.parametrize(
    "text, kind, value",
    [
        ("Write to info@presidio.site today.", "email", "info@presidio.site"),
        ("user@xn--80ak6aa92e.com", "email", "user@xn--80ak6aa92e.com"),
        ("Please call (415) 555-0132 after six.", "phone", "(415) 555-0132"),
        ("Desk: +447700 921 916", "phone", "+447700 921 916"),
        ("+46 (0)8 928 571 38 fax", "phone", "+46 (0)8 928 571 38"),
        ("Mobile: 0490 39 07 81", "phone", "0490 39 07 81"),
        ("Fax: 345-899-3560x4587", "phone", "345-899-3560x4587"),
        ("Phone:\n467 3395", "phone", "467 3395"),  # weak shape, phone keyword before it
        ("from IP 86.121.97.248 at noon", "ip", "86.121.97.248"),
        ("Server IP: 2400:c401::5054:ff:fe1b:b031.", "ip", "2400:c401::5054:ff:fe1b:b031"),
        ("my card 4012-8888-8888-1881 expires", "credit_card", "4012-8888-8888-1881"),
        ("Amex 371449635398431.", "credit_card", "371449635398431"),
        ("IBAN: GB82 WEST 1234 5698 7654 32 then", "iban", "GB82 WEST 1234 5698 7654 32"),
        ("IL150120690000003111111 is valid", "iban", "IL150120690000003111111"),
        ("gb42nawi04454264788619", "iban", "gb42nawi04454264788619"),
        ("Kate's social security number is 078-05-1126.", "ssn", "078-05-1126"),
        ("SSN 078 05 1123", "ssn", "078 05 1123"),
        ("SSN: 078051123", "ssn", "078051123"),  # bare nine digits need the keyword
    ],
)
def test_each_type_found_and_replaced(text, kind, value):
    assert spans_of(text) == [(kind, value)]
    redacted, counts = redact(text)
    placeholder = {"email": "EMAIL", "phone": "PHONE", "ip": "IP_ADDRESS", "credit_card": "CREDIT_CARD", "iban": "IBAN", "ssn": "SSN"}[kind]
    assert redacted == text.replace(value, f"<{placeholder}>")
    assert counts == {placeholder: 1}


@pytest.mark.parametrize(
    "text",
    [
        "my credit card number is 4012-8888-8888-1882",  # Luhn fails
        "my credit card number is 36168002586008",  # Luhn fails
        "order 1748503543012 shipped",  # a millisecond timestamp: no issuer uses 13 digits after 1
        "gateway 192.168.0.1, also 10.0.0.1, 172.16.4.2, 127.0.0.1, 169.254.1.1, 0.0.0.0",  # private
        "multicast 224.0.0.1, doc range 2001:db8::1, link-local fe80::1, loopback ::1",
        "IPv4-mapped private ::ffff:10.0.0.1",
        "update to Firefox 1.2.3.4 now",  # four single-digit octets: a version number
        "GB82 WEST 1234 5698 7654 33",  # IBAN check digits wrong
        "GB82 WEST 1234 5698 7654",  # shorter than the GB registry length
        "invalid SSNs 666-12-3456, 900-12-3456, 000-12-3456, 078-05-0000, 078 00 1123",
        "the Woolworth card 078-05-1120 and 123-45-6789",  # published samples
        "id 078051123 in the log",  # nine bare digits without an SSN keyword
        "std::cout and 12:34:56 and aa:bb:cc:dd:ee:ff",
        "mail info@presidio. and hello-world",
    ],
)
def test_near_misses_left_alone(text):
    assert find(text) == []
    assert redact(text) == (text, {})


@pytest.mark.parametrize(
    "text",
    [
        "On 2004-08-15 and 15.08.2004 and 08-15-2004 markets fell.",
        "The 1999-2000 season and the 2003 2004 budget.",
        "Sales rose to $1,234,567 (about 1.234.567 euros) in 2004.",
        "ISBN 0-306-40615-2 and ISBN 978-3-16-148410-0, also ISBN 0306406152.",
        "Windows 10.0.19041.1 and version 3.10.12 released.",
        "The numbers drawn were 10-18-19-22; the Megaball was 6.",
        "Order id 5403926876 and 13812345678 and 12 345 678 people.",
        "Reuters 256.256.256.256 or 192.168.100.200",
    ],
)
def test_dates_years_prices_isbns_ids_are_not_phones(text):
    assert [s for s in find(text) if s.type == "phone"] == []


def test_counts_per_placeholder_and_non_overlapping_spans():
    text = (
        "Mail a@example.com or b@example.org, call +1 415 555 0132 or (415) 555-0132, "
        "server 8.8.8.8 (dns), card 4111 1111 1111 1111, IBAN DE89370400440532013000, SSN 219-09-9998."
    )
    redacted, counts = redact(text)
    assert counts == {"EMAIL": 2, "PHONE": 2, "IP_ADDRESS": 1, "CREDIT_CARD": 1, "IBAN": 1, "SSN": 1}
    assert redacted == (
        "Mail <EMAIL> or <EMAIL>, call <PHONE> or <PHONE>, "
        "server <IP_ADDRESS> (dns), card <CREDIT_CARD>, IBAN <IBAN>, SSN <SSN>."
    )
    spans = find(text)
    assert all(a.end <= b.start for a, b in zip(spans, spans[1:]))
    assert all(isinstance(s, Span) for s in spans)


def test_types_select_what_is_redacted():
    text = "a@example.com 4111 1111 1111 1111"
    assert redact(text, ["credit_card"]) == ("a@example.com <CREDIT_CARD>", {"CREDIT_CARD": 1})
    with pytest.raises(ValueError, match="bogus"):
        find(text, ["bogus"])


def test_redact_batch_fills_pii_and_leaves_rejected_and_other_kinds_alone():
    rows = [
        {"id": "1", "source": "s", "kind": "news", "title": "Call 781-442-0750", "text": "Mail a@example.com or b@example.com."},
        {"id": "2", "source": "s", "kind": "news", "text": "Nothing personal here, 2004-08-15."},
        {"id": "3", "source": "s", "kind": "news", "text": "a@example.com", "reject_stage": "clean", "reject_reason": "too_short"},
        {"id": "4", "source": "s", "kind": "translation", "src_text": "IP 8.8.4.4 (dns)", "tgt_text": "IP 8.8.4.4 (DNS)"},
        {"id": "5", "source": "s", "kind": "web", "text": "a@example.com"},
    ]
    cfg = PiiConfig(kinds=["news", "translation"])
    out = redact_batch(schema.records_from_rows(rows), cfg).to_pylist()
    assert out[0]["text"] == "Mail <EMAIL> or <EMAIL>." and out[0]["title"] == "Call <PHONE>"
    assert json.loads(out[0]["pii"]) == {"EMAIL": 2, "PHONE": 1}
    assert out[1]["text"] == rows[1]["text"] and out[1]["pii"] is None
    assert out[2]["text"] == "a@example.com" and out[2]["pii"] is None and out[2]["reject_reason"] == "too_short"
    assert (out[3]["src_text"], out[3]["tgt_text"]) == ("IP <IP_ADDRESS> (dns)", "IP <IP_ADDRESS> (DNS)")
    assert json.loads(out[3]["pii"]) == {"IP_ADDRESS": 2}
    assert out[4]["text"] == "a@example.com" and out[4]["pii"] is None  # kind not in cfg.kinds
    assert [r["reject_reason"] for r in out] == [None, None, "too_short", None, None]  # never rejects


def test_redact_batch_disabled_is_identity():
    table = schema.records_from_rows([{"id": "1", "source": "s", "kind": "news", "text": "a@example.com"}])
    assert redact_batch(table, PiiConfig(enabled=False)).equals(table)


def test_chinese_mobiles_ids_cards_and_international_numbers_in_chinese_text():
    def cn_id(body: str) -> str:
        c = (12 - sum(int(a) * pow(2, 17 - i, 11) for i, a in enumerate(body)) % 11) % 11
        return body + ("X" if c == 10 else str(c))

    good_id = cn_id("11010519491231002")
    bad_id = good_id[:-1] + ("0" if good_id[-1] != "0" else "1")
    cases = [
        ("我的手机13812345678，请联系。", "我的手机<PHONE>，请联系。"),
        ("电话：+86 138-1234-5678。", "电话：<PHONE>。"),
        (f"身份证号{good_id}已登记。", "身份证号<CN_ID>已登记。"),
        (f"身份证号{bad_id}。", f"身份证号{bad_id}。"),  # wrong MOD 11-2 check character
        ("身份证号110105194902301234。", "身份证号110105194902301234。"),  # 30 February
        ("银行卡号6222021234567890128转账。", "银行卡号<CREDIT_CARD>转账。"),  # UnionPay, Luhn
        ("请拨打+44 20 7946 0958咨询；1943年成立。", "请拨打<PHONE>咨询；1943年成立。"),
        ("2019年有13亿人口，1629-1631年的瘟疫。", "2019年有13亿人口，1629-1631年的瘟疫。"),
        ("订单号213812345678901。", "订单号213812345678901。"),
    ]
    assert [redact(t)[0] for t, _ in cases] == [want for _, want in cases]
