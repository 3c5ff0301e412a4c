"""Chinese PII: precision and recall per type on generated numbers mixed into real Chinese text.

    .venv/bin/python benchmarks/pii_zh.py [--docs 1000] [--seed 0]

Text: XQuAD zh paragraphs (tests/data/qa/xquad, CC BY-SA 4.0), real Chinese with its own years,
counts and amounts (the numbers that must not be redacted). Into each, 1-3 items are inserted at
sentence boundaries, each inside a realistic phrase, with or without a keyword ("手机", "身份证号",
"银行卡号", "请拨打", or none):
  cn_mobile    11-digit mainland mobiles of real blocks (13x-19x): bare, 3-4-4 by space or hyphen,
               +86 / 0086 / 86 prefixes                                        -> <PHONE>
  cn_id        resident identity card numbers (GB 11643-1999): region code, real birth date,
               sequence, ISO 7064 MOD 11-2 check character (X included)         -> <CN_ID>
  bank_card    UnionPay 62 (16 and 19 digits), Visa and Mastercard, Luhn-valid, bare or in groups of 4
                                                                               -> <CREDIT_CARD>
  e164         international numbers +CC as people write them (+44 20 7946 0958, +1 415-555-2671,
               +81 3-1234-5678, +49 30 12345678, +852 2123 4567, +886 2 2345 6789) -> <PHONE>
and decoys that must be kept: order and tracking numbers (10-20 digits failing every check), ID
numbers with a wrong check character, card numbers failing Luhn, dates (2023年10月1日, 2023-10-01),
amounts (1,234,567元), view counts of 5-10 digits, years and counts.
A predicted span counts for its type when it overlaps an inserted item of that type (precision:
share of predicted spans of a type that hit an item of the type; recall: share of items found with
their type). Decoys and the paragraphs' own numbers can only lower precision.
"""

from __future__ import annotations

import argparse
import datetime
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sft_ray.clean import pii  # noqa: E402

XQUAD_ZH = Path(__file__).resolve().parents[1] / "tests/data/qa/xquad/xquad.zh.json"
# sft_ray type that each generated kind must be found as
TYPE_OF = {"cn_mobile": "cn_mobile", "cn_id": "cn_id", "bank_card": "credit_card", "e164": "phone"}
PREFIXES = ["", "联系电话：", "手机：", "手机号码", "请拨打", "电话", "如有疑问请联系", "微信同号", "身份证号：", "身份证号码为", "银行卡号", "卡号：", "汇款至", "账号 "]


def luhn_complete(body: str) -> str:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return body + str((10 - total % 10) % 10)


def id_complete(body: str) -> str:
    w = [pow(2, 17 - i, 11) for i in range(17)]
    c = (12 - sum(int(a) * b for a, b in zip(body, w)) % 11) % 11
    return body + ("X" if c == 10 else str(c))


def digits(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789") for _ in range(n))


def mobile(rng: random.Random) -> str:
    n = rng.choice(["13", "15", "17", "18", "19", "14", "16"]) + rng.choice("0123456789") + digits(rng, 8)
    shape = rng.choice(["bare", "bare", "space", "dash"])
    s = {"bare": n, "space": f"{n[:3]} {n[3:7]} {n[7:]}", "dash": f"{n[:3]}-{n[3:7]}-{n[7:]}"}[shape]
    return rng.choice(["", "", "", "+86 ", "+86-", "+86", "0086 ", "86-"]) + s


def birth(rng: random.Random) -> str:
    d = datetime.date(1940, 1, 1) + datetime.timedelta(days=rng.randrange(365 * 80))
    return d.strftime("%Y%m%d")


def cn_id(rng: random.Random, valid: bool = True) -> str:
    region = rng.choice(["110105", "310104", "440305", "510107", "320102", "330106", "420111", "610113", "650102", "230103"])
    body = region + birth(rng) + digits(rng, 3)
    good = id_complete(body)
    if valid:
        return good
    return body + rng.choice([c for c in "0123456789X" if c != good[-1]])


def card(rng: random.Random, valid: bool = True) -> str:
    kind = rng.choice(["up16", "up19", "up16", "visa", "mc"])
    body = {"up16": "62" + digits(rng, 13), "up19": "62" + digits(rng, 16), "visa": "4" + digits(rng, 14), "mc": "5" + rng.choice("12345") + digits(rng, 13)}[kind]
    n = luhn_complete(body)
    if not valid:
        n = n[:-1] + str((int(n[-1]) + rng.randrange(1, 10)) % 10)
    if rng.random() < 0.4:
        n = " ".join(n[i : i + 4] for i in range(0, len(n), 4))
    return n


def e164(rng: random.Random) -> str:
    return rng.choice([
        f"+44 20 {digits(rng, 4)} {digits(rng, 4)}", f"+1 415-{rng.randrange(200, 999)}-{digits(rng, 4)}", f"+81 3-{digits(rng, 4)}-{digits(rng, 4)}",
        f"+49 30 {digits(rng, 8)}", f"+852 {rng.choice('23569')}{digits(rng, 3)} {digits(rng, 4)}", f"+886 2 {digits(rng, 4)} {digits(rng, 4)}",
        f"+33 1 {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)} {digits(rng, 2)}", f"+65 {rng.choice('689')}{digits(rng, 3)} {digits(rng, 4)}",
    ])


def decoy(rng: random.Random) -> str:
    return rng.choice([
        f"订单号{rng.choice('2345789')}{digits(rng, rng.randrange(9, 20))}", f"快递单号SF{digits(rng, 12)}", f"身份证号{cn_id(rng, valid=False)}",
        f"卡号{card(rng, valid=False)}", f"{rng.randrange(1990, 2030)}年{rng.randrange(1, 13)}月{rng.randrange(1, 29)}日",
        f"{rng.randrange(1990, 2030)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}", f"{rng.randrange(1, 999)},{digits(rng, 3)},{digits(rng, 3)}元",
        f"阅读量{rng.randrange(10000, 9999999999)}次", f"第{rng.randrange(1, 300)}届", f"约{rng.randrange(1, 99)}.{rng.randrange(1, 9)}亿人",
    ])


def paragraphs() -> list[str]:
    data = json.loads(XQUAD_ZH.read_text("utf-8"))
    return [p["context"] for a in data["data"] for p in a["paragraphs"]]


def make(n_docs: int, seed: int) -> list[tuple[str, list[tuple[int, int, str]]]]:
    rng = random.Random(seed)
    paras = paragraphs()
    gen = {"cn_mobile": mobile, "cn_id": cn_id, "bank_card": card, "e164": e164}
    docs = []
    for i in range(n_docs):
        sents = [s + "。" for s in paras[i % len(paras)].split("。") if s]
        items = []
        for _ in range(rng.randrange(1, 4)):
            kind = rng.choice(list(gen))
            items.append((kind, rng.choice(PREFIXES) + "{}" + rng.choice(["。", "，谢谢。", "；", "（工作日）。", " 。"]), gen[kind](rng)))
        for _ in range(rng.randrange(0, 3)):
            items.append((None, "{}" + rng.choice(["。", "，", "；"]), decoy(rng)))
        slots = sorted(rng.randrange(len(sents) + 1) for _ in items)
        rng.shuffle(items)
        text, gold, k = "", [], 0
        for j in range(len(sents) + 1):
            while k < len(items) and slots[k] == j:
                kind, frame, value = items[k]
                pre, post = frame.split("{}")
                start = len(text) + len(pre)
                text += pre + value + post
                if kind:
                    gold.append((start, start + len(value), TYPE_OF[kind]))
                k += 1
            if j < len(sents):
                text += sents[j]
        docs.append((text, gold))
    return docs


def evaluate(docs) -> dict[str, dict[str, float]]:
    types = sorted(set(TYPE_OF.values()))
    c = {t: {"gold": 0, "pred": 0, "tp_pred": 0, "tp_gold": 0} for t in types}
    errors = []
    for text, gold in docs:
        pred = [(s.start, s.end, s.type) for s in pii.find(text)]
        for t in types:
            p = [s for s in pred if s[2] == t]
            g = [s for s in gold if s[2] == t]
            c[t]["pred"] += len(p)
            c[t]["gold"] += len(g)
            hit = [any(a < ge and ga < b for ga, ge, _ in g) for a, b, _ in p]
            found = [any(a < ge and ga < b for a, b, _ in p) for ga, ge, _ in g]
            c[t]["tp_pred"] += sum(hit)
            c[t]["tp_gold"] += sum(found)
            errors += [f"FP {t}: {text[max(0, a - 12):b + 6]!r}" for (a, b, _), h in zip(p, hit) if not h]
            errors += [f"FN {t}: {text[max(0, a - 12):b + 6]!r}" for (a, b, _), f in zip(g, found) if not f]
    out = {}
    for t, k in c.items():
        p = k["tp_pred"] / k["pred"] if k["pred"] else float("nan")
        r = k["tp_gold"] / k["gold"] if k["gold"] else float("nan")
        out[t] = {**k, "precision": p, "recall": r}
    return out, errors


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--docs", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    docs = make(args.docs, args.seed)
    t0 = time.process_time()
    res, errors = evaluate(docs)
    cpu = time.process_time() - t0
    print(f"### Chinese PII: {len(docs)} XQuAD zh paragraphs with generated items and decoys (seed {args.seed})\n")
    print("| type (generated as) | items | predicted | precision | recall |")
    print("|---|---:|---:|---:|---:|")
    names = {v: k for k, v in TYPE_OF.items()}
    for t, r in res.items():
        print(f"| {t} ({names[t]}) | {r['gold']} | {r['pred']} | {r['precision']:.3f} | {r['recall']:.3f} |")
    print(f"\n`pii.find`, all types: {len(docs) / cpu:,.0f} docs per CPU-second")
    if errors:
        print(f"\n{len(errors)} errors (first 15):\n" + "\n".join(errors[:15]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
