"""Paper notices: a batch as one printable HTML file and a plain-text file."""

from __future__ import annotations

import re
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest

from prepaid.messages import (
    Lang,
    Notice,
    NoticeBatch,
    NoticeError,
    PageSize,
    Recipient,
    default_templates,
    render_html,
    write_batch,
)

T = default_templates()
PLANNED = datetime(2026, 3, 9, 9, 30)


def area_batch(count: int = 3) -> NoticeBatch:
    notices = []
    for i in range(1, count + 1):
        who = Recipient(f"C00{i}", f"客户{i}", "", f"幸福路{i}号", "A01-台区")
        params = {
            "name": who.name,
            "customer_no": who.customer_no,
            "address": who.address,
            "balance": -1000 * i,
            "amount_due": 5000 + 1000 * i,
            "planned_at": PLANNED,
        }
        notices.append(Notice.from_rendered(who, T.render("disconnection_notice", params)))
    return NoticeBatch.of("A01-20260308-1", datetime(2026, 3, 8, 10, 0), notices, "费控中心")


class _Sections(HTMLParser):
    """Collects the text of each <section class="notice">."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[str] = []
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section" and ("class", "notice") in attrs:
            self.sections.append("")
            self._inside = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside:
            self.sections[-1] += data


def test_batch_has_every_customer_with_amounts_time_and_batch_number(tmp_path: Path) -> None:
    files = write_batch(area_batch(3), tmp_path)
    assert files.count == 3
    assert files.html.name == "A01-20260308-1.html" and files.text.name == "A01-20260308-1.txt"
    parser = _Sections()
    parser.feed(files.html.read_text(encoding="utf-8"))
    assert len(parser.sections) == 3
    for i, section in enumerate(parser.sections, start=1):
        assert f"C00{i}" in section and f"客户{i}" in section and f"幸福路{i}号" in section
        assert "批次号：A01-20260308-1" in section
        assert f"第 {i} / 3 份" in section
        assert "停电通知" in section
        assert f"当前余额（元）-{i * 10}.00" in section  # -1000·i fen
        assert f"应缴金额（元）{50 + 10 * i}.00" in section
        assert "计划停电时间2026年3月9日 09:30" in section
        assert "台区A01-台区" in section
        assert "签发单位：费控中心" in section and "日期：2026年3月8日" in section


def test_one_page_per_notice_in_html_and_text() -> None:
    html = render_html(area_batch(4), PageSize.A5)
    assert "@page { size: A5 portrait" in html
    # every notice ends its page except the last (no blank trailing page)
    assert ".notice { break-after: page; page-break-after: always;" in html
    assert ".notice:last-child { break-after: auto; page-break-after: auto; }" in html
    assert len(re.findall(r'<section class="notice"', html)) == 4
    assert "size: A4 portrait" in render_html(area_batch(1), PageSize.A4)
    files_text = area_batch(4)
    from prepaid.messages import render_text

    text = render_text(files_text)
    pages = text.split("\f")
    assert len(pages) == 4
    for i, page in enumerate(pages, start=1):
        assert f"户号: C00{i}" in page and "批次号: A01-20260308-1" in page
        assert "计划停电时间: 2026年3月9日 09:30" in page


def test_text_is_escaped_in_html() -> None:
    who = Recipient("C<1>", "<script>alert(1)</script>", "", "A & B", "A01")
    rendered = T.render("custom", {"name": who.name, "text": "<b>hi</b>"}, Lang.EN)
    batch = NoticeBatch.of("B1", datetime(2026, 3, 8), [Notice.from_rendered(who, rendered)])
    html = render_html(batch)
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "A &amp; B" in html and "<b>hi</b>" not in html
    assert "Account no." in html and "notice 1 of 1" in html
    assert "Batch: B1" in html and "Date: 2026-03-08" in html  # English punctuation


def test_bad_batches_are_refused(tmp_path: Path) -> None:
    with pytest.raises(NoticeError, match="has no notices"):
        NoticeBatch.of("B1", datetime(2026, 3, 8), [])
    with pytest.raises(NoticeError, match="must be 1–64 letters"):
        NoticeBatch.of("../etc/passwd", datetime(2026, 3, 8), area_batch(1).notices)
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(NoticeError, match="cannot write the notices of batch"):
        write_batch(area_batch(1), blocker / "sub")
