"""Customer search on a real PostgreSQL: the same pages as the rows say, on the indexes."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import date

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

from console.queries.customers import SearchField, search
from prepaid.db import migrate, open_database
from prepaid.generate import GenerateOptions, generate

from ..headend.test_postgres import pg_url

__all__ = ["pg_url"]


@pytest.fixture
def pg(pg_url: str) -> Iterator[Engine]:
    admin = open_database(pg_url)
    with admin.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
        c.execute(text("DROP DATABASE IF EXISTS feikong_console"))
        c.execute(text("CREATE DATABASE feikong_console"))
    admin.dispose()
    url = make_url(pg_url).set(database="feikong_console").render_as_string(hide_password=False)
    engine = open_database(url)
    migrate(engine)
    generate(engine, GenerateOptions(customers=400, days=2, seed=4, start=date(2026, 3, 1)))
    yield engine
    engine.dispose()


def _all_pages(engine: Engine, typed: str, field: SearchField) -> list[str]:
    found: list[str] = []
    cursor = None
    while True:
        page = search(engine, typed, field, after=cursor, limit=7)
        found += [r.customer_no for r in page.rows]
        if page.next_cursor is None:
            return found
        cursor = page.next_cursor


def test_search_pages_on_postgres_match_the_rows(pg: Engine) -> None:
    with pg.connect() as c:
        rows = c.execute(
            text(
                "SELECT a.id, a.customer_no, a.name, a.phone, a.meter_address, t.code"
                " FROM prepaid_account a JOIN prepaid_transformer_area t"
                " ON t.id = a.transformer_area_id"
            )
        ).all()
    sample = rows[123]

    def expect(column: int, prefix: str) -> list[str]:
        hits = [r for r in rows if str(r[column]).startswith(prefix)]
        # byte order (the "C" collation) of the column, then the account id
        hits.sort(key=lambda r: (str(r[column]).encode(), r[0]))
        return [str(r[1]) for r in hits]

    name_prefix = Counter(str(r[2])[0] for r in rows).most_common(1)[0][0]  # a common surname
    assert _all_pages(pg, name_prefix, SearchField.NAME) == expect(2, name_prefix)
    assert len(expect(2, name_prefix)) > 7  # several pages
    assert _all_pages(pg, str(sample[3])[:3], SearchField.PHONE) == expect(3, str(sample[3])[:3])
    assert _all_pages(pg, "33000001", SearchField.CUSTOMER_NO) == expect(1, "33000001")
    assert _all_pages(pg, str(sample[4]), SearchField.METER) == [sample[1]]
    in_area = sorted((r[0], r[1]) for r in rows if r[5] == sample[5])
    assert _all_pages(pg, str(sample[5]), SearchField.AREA) == [c for _, c in in_area]


def test_the_name_and_phone_searches_can_use_their_indexes(pg: Engine) -> None:
    with pg.connect() as c:
        c.execute(text("ANALYZE prepaid_account"))
        c.execute(text("SET enable_seqscan = off"))  # a 400-row table: show the index is usable
        for column, index in (
            ("name", "ix_prepaid_account_name"),
            ("phone", "ix_prepaid_account_phone"),
        ):
            plan = " ".join(
                r[0]
                for r in c.execute(
                    text(
                        f'EXPLAIN SELECT id FROM prepaid_account WHERE {column} COLLATE "C" >= :a'
                        f' AND {column} COLLATE "C" < :b ORDER BY {column} COLLATE "C", id LIMIT 51'
                    ),
                    {"a": "13", "b": "14"},
                )
            )
            assert index in plan, plan
