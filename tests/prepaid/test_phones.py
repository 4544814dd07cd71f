"""Mainland mobile numbers: normalised, classified, listed and exported (SPEC S4.4-3)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from prepaid.messages import (
    Channel,
    MessageError,
    PhoneProblem,
    Recipient,
    check_phone,
    export_invalid_csv,
    invalid_numbers,
    normalise_phone,
    read_recipients_csv,
)

P = PhoneProblem


@pytest.mark.parametrize(
    ("raw", "number"),
    [
        ("13800138000", "13800138000"),
        ("+86 138 0013 8000", "13800138000"),
        ("+8613800138000", "13800138000"),
        ("8613800138000", "13800138000"),
        ("0086-138-0013-8000", "13800138000"),
        ("138-0013-8000", "13800138000"),
        ("(138)0013.8000", "13800138000"),
        ("１３８００１３８０００", "13800138000"),  # full-width digits from a CIS form
        (" 19912345678\t", "19912345678"),
        ("16612345678", "16612345678"),
    ],
)
def test_valid_numbers_are_normalised(raw: str, number: str) -> None:
    check = check_phone(raw)
    assert check.valid, check.detail
    assert check.number == number
    assert normalise_phone(raw) == number


@pytest.mark.parametrize(
    ("raw", "problem", "detail"),
    [
        ("", P.EMPTY, "no phone number"),
        (None, P.EMPTY, "no phone number"),
        ("  - ", P.EMPTY, "no phone number"),
        ("1380013800", P.TOO_SHORT, "10 digits; a mobile has 11"),
        ("138", P.TOO_SHORT, "3 digits"),
        ("138001380001", P.TOO_LONG, "12 digits; a mobile has 11"),
        ("+86 1380013800", P.TOO_SHORT, "10 digits"),  # the country code is not counted
        ("861380013800", P.TOO_LONG, "12 digits"),  # a bare 86 only in front of 11 digits
        ("0086 1380013800", P.TOO_SHORT, "10 digits"),
        ("1380013800O", P.LETTERS, "contains letters (O)"),
        ("abc", P.LETTERS, "contains letters (abc)"),
        ("138#0013800", P.BAD_CHARACTERS, "contains '#'"),
        ("12800138000", P.BAD_PREFIX, "starts 12"),
        ("23800138000", P.BAD_PREFIX, "starts 23"),
        ("010-12345678", P.BAD_PREFIX, "landline"),
        ("0755 1234 5678", P.BAD_PREFIX, "landline"),
    ],
)
def test_invalid_numbers_are_classified(
    raw: str | None, problem: PhoneProblem, detail: str
) -> None:
    check = check_phone(raw)
    assert not check.valid
    assert check.number is None
    assert check.problem is problem
    assert detail in check.detail


def customers() -> list[Recipient]:
    return [
        Recipient("C001", "张三", "13800138000", "幸福路1号", "A01"),
        Recipient("C002", "李四", "", "幸福路2号", "A01"),
        Recipient("C003", "王五", "1380013800", "幸福路3号", "A01"),
        Recipient("C004", "赵六", "13800l38000", "幸福路4号", "A02"),
        Recipient("C005", "钱七", "+86 139 0000 0000", "幸福路5号", "A02"),
    ]


def test_invalid_numbers_lists_exactly_the_bad_ones_and_exports_csv(tmp_path: Path) -> None:
    bad = invalid_numbers(customers())
    assert [(r.customer_no, c.problem) for r, c in bad] == [
        ("C002", P.EMPTY),
        ("C003", P.TOO_SHORT),
        ("C004", P.LETTERS),
    ]
    out = tmp_path / "invalid.csv"
    assert export_invalid_csv(bad, out) == 3
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # BOM: Excel opens it as UTF-8
    with out.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["customer_no"], r["name"], r["phone"], r["problem"]) for r in rows] == [
        ("C002", "李四", "", "empty"),
        ("C003", "王五", "1380013800", "too-short"),
        ("C004", "赵六", "13800l38000", "letters"),
    ]
    assert rows[1]["area"] == "A01" and rows[1]["address"] == "幸福路3号"
    with pytest.raises(MessageError, match="cannot write"):
        export_invalid_csv(bad, tmp_path / "no" / "such" / "dir" / "x.csv")


def test_recipients_csv_with_chinese_headers_and_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(
        "户号,户名,手机号码,用电地址,台区,通知方式\n"
        "C001,张三,13800138000,幸福路1号,A01,sms\n"
        ",无户号,13800138001,,A01,\n"
        "C003,王五,,幸福路3号,A01,paper\n"
        "C004,赵六,13800138004,幸福路4号,A01,fax\n"
        "\n",
        encoding="utf-8-sig",
    )
    recipients, problems = read_recipients_csv(path)
    assert [(r.customer_no, r.channel) for r in recipients] == [
        ("C001", Channel.SMS),
        ("C003", Channel.PAPER),
    ]
    assert recipients[0] == Recipient("C001", "张三", "13800138000", "幸福路1号", "A01")
    assert [(p.line, p.detail) for p in problems] == [
        (3, "no customer number"),
        (5, "channel 'fax' is not sms or paper"),
    ]
    headerless = tmp_path / "h.csv"
    headerless.write_text("C001,张三\n", encoding="utf-8")
    with pytest.raises(MessageError, match="needs customer_no and phone columns"):
        read_recipients_csv(headerless)
    with pytest.raises(MessageError, match="cannot read"):
        read_recipients_csv(tmp_path / "missing.csv")
