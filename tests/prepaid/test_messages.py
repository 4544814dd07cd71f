"""Message templates: every kind in zh and en, placeholders checked, money and dates written."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from prepaid.messages import (
    Lang,
    MessageKind,
    MissingPlaceholderError,
    SmsEncoding,
    TemplateError,
    TemplateSet,
    UnknownPlaceholderError,
    UnknownTemplateError,
    ValueFormatError,
    default_templates,
    format_datetime,
    format_energy,
    format_money,
    format_month,
    format_price,
    sms_length,
)

T = default_templates()
WHO = {"name": "张三", "customer_no": "0101234567"}
WHO_EN = {"name": "Zhang San", "customer_no": "0101234567"}

# A value for every placeholder type, in the project's integer units where possible.
SAMPLE: dict[str, object] = {
    "address": "幸福路1号",
    "balance": -12345,  # fen
    "reminder": 2000,
    "amount_due": Decimal("150"),  # yuan
    "as_of": datetime(2026, 3, 5, 8, 0),
    "pay_by": datetime(2026, 3, 8, 18, 0),
    "planned_at": datetime(2026, 3, 9, 9, 30),
    "at": datetime(2026, 3, 9, 9, 31),
    "amount": 20000,
    "tier": 2,
    "usage": 23000,  # 0.01 kWh
    "price": 5700,  # 1e-4 yuan/kWh
    "month": date(2026, 2, 1),
    "last_reading": 1234500,
    "this_reading": 1256050,
    "charge": 11206,
    "text": "春节快乐！",
    "work_order_no": "WO-2026-0042",
    "summary": "3 次远程拉闸失败",
}


def params_for(kind: str, who: dict[str, str]) -> dict[str, object]:
    names = T.get(kind).params
    return {n: who.get(n, SAMPLE.get(n)) for n in names}


def test_money_from_fen_and_decimal_never_float() -> None:
    assert format_money(12345) == "123.45"
    assert format_money(5) == "0.05"
    assert format_money(-12345) == "-123.45"
    assert format_money(0) == "0.00"
    assert format_money(Decimal("7.5")) == "7.50"
    assert format_money(Decimal("0.125")) == "0.13"  # half-up, as settlement rounds
    assert format_money(Decimal("-0.001")) == "0.00"  # no "-0.00"
    with pytest.raises(ValueFormatError, match="float is not exact"):
        format_money(1.1)  # type: ignore[arg-type]
    with pytest.raises(ValueFormatError, match="int in fen or a Decimal in yuan"):
        format_money(True)  # a bool is not an amount


def test_energy_price_and_dates() -> None:
    assert format_energy(45025) == "450.25"
    assert format_energy(Decimal("450.2")) == "450.20"
    assert format_price(5200) == "0.5200"
    assert format_price(Decimal("0.57")) == "0.5700"
    moment = datetime(2026, 3, 5, 9, 5)
    assert format_datetime(moment, Lang.ZH) == "2026年3月5日 09:05"
    assert format_datetime(moment, Lang.EN) == "2026-03-05 09:05"
    assert format_month(date(2026, 12, 31), Lang.ZH) == "2026年12月"
    assert format_month(date(2026, 12, 31), Lang.EN) == "December 2026"


@pytest.mark.parametrize("lang", list(Lang))
@pytest.mark.parametrize("kind", list(MessageKind))
def test_every_kind_renders_in_every_language(kind: MessageKind, lang: Lang) -> None:
    rendered = T.render(kind, params_for(kind, WHO if lang is Lang.ZH else WHO_EN), lang)
    assert rendered.text.startswith(T.get(kind, lang).signature)
    assert "{" not in rendered.text and "}" not in rendered.text
    assert rendered.title
    assert rendered.length.segments >= 1
    for name, written in rendered.fields.items():
        assert written in rendered.body or name not in T.get(kind, lang).text


def test_low_balance_zh_and_en_exact_text() -> None:
    params = {"balance": 1550, "reminder": 2000, "as_of": datetime(2026, 3, 5, 8, 0)}
    zh = T.render("low_balance", {**WHO, **params})
    assert zh.text == (
        "【费控中心】尊敬的张三：您的户号0101234567截至2026年3月5日 08:00剩余电费15.50元，"
        "已低于提醒金额20.00元，请及时缴费。"
    )
    en = T.render("low_balance", {**WHO_EN, **params}, "en")
    assert en.text == (
        "[Power Supply] Dear Zhang San, as of 2026-03-05 08:00 account 0101234567 has "
        "15.50 yuan left, below the reminder amount of 20.00 yuan. Please top up."
    )


def test_disconnection_notice_zh_and_en_exact_text() -> None:
    params = {
        "address": "幸福路1号",
        "balance": -3020,
        "amount_due": 5000,
        "planned_at": datetime(2026, 3, 9, 9, 30),
    }
    zh = T.render("disconnection_notice", {**WHO, **params})
    assert zh.title == "停电通知"
    assert zh.body == (
        "尊敬的张三：您的户号0101234567（幸福路1号）当前余额-30.20元，"
        "将于2026年3月9日 09:30起停止供电。请尽快缴纳电费50.00元以上，到账后即恢复供电。"
    )
    en = T.render("disconnection_notice", {**WHO_EN, **params, "address": "1 Xingfu Rd"}, "en")
    assert en.body == (
        "Dear Zhang San, power to account 0101234567 (1 Xingfu Rd), balance -30.20 yuan, "
        "will be disconnected from 2026-03-09 09:30. Pay at least 50.00 yuan; power is "
        "restored once it arrives."
    )


def test_monthly_bill_zh_and_en_exact_text() -> None:
    # readings 12345.00 → 12560.50 kWh: usage 215.50 kWh; charge 112.06 yuan
    params = {
        "month": date(2026, 2, 1),
        "last_reading": 1234500,
        "this_reading": 1256050,
        "usage": 1256050 - 1234500,
        "charge": 11206,
        "balance": Decimal("88.94"),
    }
    zh = T.render("monthly_bill", {**WHO, **params})
    assert zh.title == "2026年2月电费账单"
    assert zh.body == (
        "尊敬的张三：您的户号0101234567的2026年2月账单：上月示数12345.00，本月示数12560.50，"
        "用电215.50千瓦时，电费112.06元，当前余额88.94元。"
    )
    en = T.render("monthly_bill", {**WHO_EN, **params}, Lang.EN)
    assert en.title == "Bill for February 2026"
    assert en.body == (
        "Dear Zhang San, bill for February 2026, account 0101234567: last reading 12345.00, "
        "this reading 12560.50, usage 215.50 kWh, charge 112.06 yuan, balance 88.94 yuan."
    )


def test_topup_zh_exact_text_and_custom_signature() -> None:
    params = {"amount": 20000, "balance": 16980, "at": datetime(2026, 3, 9, 10, 2)}
    zh = T.render("topup", {**WHO, **params}, signature="【示范供电公司】")
    assert zh.text == (
        "【示范供电公司】尊敬的张三：您的户号0101234567于2026年3月9日 10:02缴费200.00元已到账，"
        "当前余额169.80元。"
    )


def test_missing_placeholder_is_a_clear_error_naming_it() -> None:
    params = {**WHO, "balance": 1550, "as_of": datetime(2026, 3, 5, 8, 0)}
    with pytest.raises(MissingPlaceholderError) as info:
        T.render("low_balance", params)
    assert info.value.missing == ("reminder",)
    assert "needs a value for reminder" in str(info.value)
    assert "'low_balance'" in str(info.value)


def test_unknown_placeholder_and_wrong_types_are_refused() -> None:
    params = {**WHO, "balance": 1550, "reminder": 2000, "as_of": datetime(2026, 3, 5)}
    with pytest.raises(UnknownPlaceholderError, match="no placeholder balence"):
        T.render("low_balance", {**params, "balence": 1})
    with pytest.raises(ValueFormatError, match=r"low_balance: balance \(money\).*float"):
        T.render("low_balance", {**params, "balance": 15.5})
    with pytest.raises(ValueFormatError, match="as_of"):
        T.render("low_balance", {**params, "as_of": date(2026, 3, 5)})  # needs a time
    with pytest.raises(UnknownTemplateError, match="no message kind 'welcome'"):
        T.render("welcome", {})
    with pytest.raises(UnknownTemplateError, match="no language 'fr'"):
        T.render("low_balance", params, "fr")


def test_parse_params_from_command_line_text() -> None:
    values = T.parse_params("topup", {"amount": "200", "at": "2026-03-09T10:02", "balance": "-1.5"})
    assert values == {
        "amount": Decimal("200"),
        "at": datetime(2026, 3, 9, 10, 2),
        "balance": Decimal("-1.5"),
    }
    with pytest.raises(ValueFormatError, match="at wants datetime like 2026-03-05T09:00"):
        T.parse_params("topup", {"at": "tomorrow"})


def test_sms_length_counts_segments() -> None:
    assert sms_length("中" * 70).segments == 1
    assert sms_length("中" * 71).segments == 2  # long SMS: 67 per segment
    assert sms_length("中" * 134).segments == 2
    assert sms_length("中" * 135).segments == 3
    plain = sms_length("a" * 160)
    assert (plain.encoding, plain.segments) == (SmsEncoding.GSM7, 1)
    assert sms_length("a" * 161).segments == 2
    assert sms_length("a" * 159 + "€").segments == 2  # € takes two septets
    assert sms_length("😀" * 35).units == 70  # outside the BMP: two UTF-16 units each
    rendered = T.render(
        "custom", {"name": "张三", "text": "今日检修，停电时间另行通知。"}, signature=""
    )
    assert rendered.length.units == len("尊敬的张三：今日检修，停电时间另行通知。")


def write_set(directory: Path, zh: str, kinds: str = '[custom]\nname = "text"\n') -> Path:
    directory.mkdir()
    (directory / "kinds.toml").write_text(kinds, encoding="utf-8")
    (directory / "zh.toml").write_text(zh, encoding="utf-8")
    return directory


def test_own_template_directory_loads_and_is_checked(tmp_path: Path) -> None:
    good = write_set(
        tmp_path / "good",
        'signature = "【县供电】"\n[labels]\nname = "户名"\n'
        '[templates.custom]\ntitle = "通知"\ntext = "{name}：{{节日}}快乐"\n',
    )
    mine = TemplateSet.load(good)
    assert mine.render("custom", {"name": "李四"}).text == "【县供电】李四：{节日}快乐"
    assert mine.languages() == [Lang.ZH]
    bad = write_set(
        tmp_path / "bad",
        '[labels]\nname = "户名"\n[templates.custom]\ntitle = "通知"\ntext = "{name}{balance}"\n',
    )
    with pytest.raises(TemplateError, match=r"uses \{balance\}, which kinds.toml does not declare"):
        TemplateSet.load(bad)
    spec = write_set(
        tmp_path / "spec",
        '[labels]\nname = "户名"\n[templates.custom]\ntitle = "t"\ntext = "{name:>10}"\n',
    )
    with pytest.raises(TemplateError, match="must be a plain name"):
        TemplateSet.load(spec)
    missing = write_set(tmp_path / "missing", '[labels]\nname = "户名"\n')
    with pytest.raises(TemplateError, match=r"\[templates.custom\] is missing"):
        TemplateSet.load(missing)
    broken = write_set(tmp_path / "broken", "signature = \n")
    with pytest.raises(TemplateError, match=r"zh\.toml: not valid TOML"):
        TemplateSet.load(broken)
    typed = write_set(tmp_path / "typed", "", kinds='[custom]\nname = "float"\n')
    with pytest.raises(TemplateError, match="the type must be one of money"):
        TemplateSet.load(typed)
