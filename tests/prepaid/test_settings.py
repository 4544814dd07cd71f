"""The settings hierarchy: precedence and sources, validation, history and audit, bulk
resolution, protected hours of a customer, and ``feikong settings``."""

from __future__ import annotations

import json
import random
from datetime import datetime, time, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from typer.testing import CliRunner

from prepaid.calendar import DailyWindow, default_calendar
from prepaid.settings import (
    ABSENT,
    CATALOG,
    SETTINGS_ENV,
    AccountsDirectory,
    EffectiveSettings,
    InconsistentSettingsError,
    InvalidSettingError,
    Level,
    NotificationMode,
    Scope,
    SettingsFileError,
    SettingsSnapshot,
    SettingsStore,
    Source,
    UnknownScopeError,
    UnknownSettingError,
    defaults_path,
    load_defaults,
    next_allowed_trip_time,
)
from prepaid.users import Operator, PermissionDeniedError, Role, Users
from protocol.clock import SteppedClock

from .security_helpers import (
    PASSWORD,
    START,
    add_places,
    add_staff,
    cli_app,
    fresh_engine,
    make_users,
    url_of,
)

runner = CliRunner()
FILE = Source(Level.DEFAULT, None, str(defaults_path()))


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    return fresh_engine(tmp_path)


@pytest.fixture
def clock() -> SteppedClock:
    return SteppedClock(START)


@pytest.fixture
def users(engine: Engine, clock: SteppedClock) -> Users:
    return make_users(engine, clock)


@pytest.fixture
def staff(users: Users) -> dict[str, Operator]:
    return add_staff(users)


@pytest.fixture
def op(staff: dict[str, Operator]) -> Operator:
    return staff["operator"]


@pytest.fixture
def store(engine: Engine, clock: SteppedClock, users: Users) -> SettingsStore:
    """A store that knows no accounts: parents are given by the caller."""
    return SettingsStore(
        engine, clock=clock, audit=users.audit, defaults=load_defaults(use_env=False)
    )


@pytest.fixture
def placed(engine: Engine, clock: SteppedClock, users: Users) -> SettingsStore:
    """A store that places lines, areas and customers with the accounts tables."""
    add_places(engine)
    return SettingsStore(
        engine,
        clock=clock,
        audit=users.audit,
        defaults=load_defaults(use_env=False),
        directory=AccountsDirectory(engine),
    )


# -- defaults ------------------------------------------------------------------------------


def test_the_defaults_file_has_every_setting() -> None:
    defaults = load_defaults(use_env=False)
    assert set(defaults.values) == set(CATALOG)
    assert set(defaults.files.values()) == {str(defaults_path())}
    text = defaults_path().read_text(encoding="utf-8")
    for name in CATALOG:
        assert f"\n{name} = " in text
    effective = SettingsSnapshot(defaults).resolve(Scope())
    assert effective.reminder_amount_fen == 2000
    assert effective.dunning_threshold_fen == 0 and effective.disconnection_threshold_fen == 0
    assert effective.notification_mode is NotificationMode.SMS
    assert effective.notice_lead_time == timedelta(days=1)
    assert effective.protected_hours == DailyWindow(time(18), time(8))
    assert effective.protected_weekends and effective.protected_holidays
    assert effective.repeat_trip_interval == timedelta(days=1) and effective.repeat_trip_max == 3
    assert effective.remote_attempts == 3 and not effective.power_guarantee
    assert not effective.auto_disconnection_request  # SPEC S2: raised by a person
    assert all(effective.source(name) == FILE for name in CATALOG)


def test_a_site_file_overrides_the_defaults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site.toml"
    site.write_text('[settings]\nreminder-amount = "30.00"\nnotice_lead_time = "2d"\n')
    monkeypatch.setenv(SETTINGS_ENV, str(site))
    defaults = load_defaults()
    assert defaults.values["reminder_amount"] == 3000
    assert defaults.values["notice_lead_time"] == timedelta(days=2)
    assert defaults.files["reminder_amount"] == str(site)
    assert defaults.files["dunning_threshold"] == str(defaults_path())
    assert str(defaults.resolved("reminder_amount").source) == "default (site.toml)"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("[settings]\nreminder_amount = 20.5\n", "floats are not exact"),
        ("[settings]\nremind_amount = 1\n", "did you mean 'reminder_amount'"),
        ("[settings]\nnotice_lead_time = 24\n", "give a unit"),
        ('[settings]\ndisconnection_threshold = "50"\n', "inconsistent defaults"),
        ("reminder_amount = 1\n", "one [settings] table"),
        ("[settings\n", "not valid TOML"),
    ],
)
def test_bad_defaults_files(tmp_path: Path, body: str, message: str) -> None:
    site = tmp_path / "site.toml"
    site.write_text(body)
    with pytest.raises(SettingsFileError) as caught:
        load_defaults(site, use_env=False)
    assert message in str(caught.value) and str(site) in str(caught.value)


# -- precedence ----------------------------------------------------------------------------

C1 = Scope(line="L1", area="A1", customer="C1")


def test_the_most_specific_level_wins_and_says_where(store: SettingsStore, op: Operator) -> None:
    assert store.lookup("reminder_amount", C1).source == FILE
    store.set("reminder_amount", "25", level="default", user=op)
    store.set("reminder_amount", "18.50", level="line", key="L1", user=op)
    store.set("reminder_amount", "15", level="area", key="A1", user=op)
    store.set("reminder_amount", "10.05", level="customer", key="C1", user=op)
    expected = [
        (C1, 1005, Source(Level.CUSTOMER, "C1")),
        (Scope(line="L1", area="A1", customer="C2"), 1500, Source(Level.AREA, "A1")),
        (Scope(line="L1", area="A2", customer="C5"), 1850, Source(Level.LINE, "L1")),
        (Scope(line="L2", area="A3", customer="C3"), 2500, Source(Level.DEFAULT)),
        (Scope(line="L1"), 1850, Source(Level.LINE, "L1")),
        (Scope(), 2500, Source(Level.DEFAULT)),
    ]
    for scope, fen, source in expected:
        found = store.lookup("reminder_amount", scope)
        assert (found.value, found.source) == (fen, source), scope
    assert str(store.lookup("reminder_amount", C1).source) == "customer C1"
    assert str(Source(Level.DEFAULT)) == "default (database)"
    # removing a level uncovers the next one up
    for level, key, fen, source in [
        ("customer", "C1", 1500, Source(Level.AREA, "A1")),
        ("area", "A1", 1850, Source(Level.LINE, "L1")),
        ("line", "L1", 2500, Source(Level.DEFAULT)),
        ("default", None, 2000, FILE),
    ]:
        store.unset("reminder_amount", level=level, key=key, user=op)
        found = store.lookup("reminder_amount", C1)
        assert (found.value, found.source) == (fen, source), level


def test_each_setting_resolves_on_its_own(store: SettingsStore, op: Operator) -> None:
    store.set("notification_mode", "paper", level="area", key="A1", user=op)
    store.set("power_guarantee", "yes", level="customer", key="C1", user=op)
    store.set("protected_hours", "20:00-07:00", level="line", key="L1", user=op)
    store.set("auto_dunning", "on", level="area", key="A1", user=op)
    effective = store.resolve(C1)
    assert isinstance(effective, EffectiveSettings)
    assert effective.notification_mode is NotificationMode.PAPER
    assert effective.power_guarantee is True and effective.auto_dunning is True
    assert effective.protected_hours == DailyWindow(time(20), time(7))
    assert effective.reminder_amount_fen == 2000
    assert effective.source("notification_mode") == Source(Level.AREA, "A1")
    assert effective.source("power_guarantee") == Source(Level.CUSTOMER, "C1")
    assert effective.source("protected_hours") == Source(Level.LINE, "L1")
    assert effective.source("reminder_amount") == FILE
    sibling = store.resolve(Scope(line="L1", area="A1", customer="C2"))
    assert sibling.power_guarantee is False and sibling.notification_mode is NotificationMode.PAPER
    rows = {r["name"]: r for r in effective.to_dict()["settings"]}
    assert rows["protected_hours"]["text"] == "20:00-07:00"
    assert rows["protected_hours"]["source"]["text"] == "line L1"
    assert rows["reminder_amount"]["value"] == "20.00"


def test_a_customer_is_placed_by_the_accounts(placed: SettingsStore, op: Operator) -> None:
    placed.set("reminder_amount", "12", level="area", key="A1", user=op)
    placed.set("reminder_amount", "16", level="line", key="L1", user=op)
    # C1's account names only its area; its line comes from the area
    c1 = placed.resolve(Scope(customer="C1"))
    assert c1.scope == Scope(line="L1", area="A1", customer="C1")
    assert (c1.reminder_amount_fen, c1.source("reminder_amount")) == (
        1200,
        Source(Level.AREA, "A1"),
    )
    assert placed.resolve(Scope(area="A2")).reminder_amount_fen == 1600
    assert placed.resolve(Scope(customer="C3")).reminder_amount_fen == 2000
    with pytest.raises(UnknownScopeError, match="no customer 'C9' in the accounts"):
        placed.resolve(Scope(customer="C9"))
    with pytest.raises(UnknownScopeError, match="no transformer area 'A9'"):
        placed.set("reminder_amount", "12", level="area", key="A9", user=op)


# -- validation ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value", "level", "key", "message"),
    [
        (
            "reminder_amount",
            "-5",
            "area",
            "A1",
            "reminder_amount at area A1: -5.00 yuan is below the minimum 0.00",
        ),
        ("reminder_amount", "20.505", "line", "L1", "at most 2 decimals"),
        (
            "reminder_amount",
            "twenty",
            "default",
            None,
            "reminder_amount at default: expected an amount",
        ),
        ("reminder_amount", 20.5, "default", None, "floats are not exact"),
        ("dunning_threshold", "2000000", "line", "L1", "beyond"),
        ("notification_mode", "email", "customer", "C1", "expected one of sms, paper; got 'email'"),
        ("power_guarantee", "maybe", "customer", "C1", "expected true or false"),
        ("protected_hours", "25:00-08:00", "area", "A1", "25:00 is not a time of day"),
        ("protected_hours", "18:00-18:00", "area", "A1", "start and end are equal"),
        ("protected_hours", "evenings", "area", "A1", "expected HH:MM-HH:MM"),
        ("notice_lead_time", "30m", "line", "L1", "30m is outside 1h..30d"),
        ("notice_lead_time", "tomorrow", "line", "L1", "a duration such as 1d"),
        ("repeat_trip_interval", "1m", "default", None, "outside 10m..30d"),
        ("repeat_trip_max", "-1", "default", None, "-1 is outside 0..100"),
        ("repeat_trip_max", "2.5", "default", None, "a whole number"),
        ("remote_attempts", "0", "area", "A1", "0 is outside 1..20"),
        (
            "auto_dunning",
            "true",
            "customer",
            "C1",
            "auto_dunning cannot be set per customer; it is set at: default, line, area",
        ),
        ("reminder_amount", "10", "default", "X", "the default level takes no key"),
        ("reminder_amount", "10", "line", None, "needs the line's code (--key)"),
    ],
)
def test_invalid_values_are_refused_naming_setting_and_level(
    store: SettingsStore,
    op: Operator,
    name: str,
    value: object,
    level: str,
    key: str | None,
    message: str,
) -> None:
    with pytest.raises(InvalidSettingError) as caught:
        store.set(name, value, level=level, key=key, user=op)
    assert message in str(caught.value)
    assert caught.value.name == name
    assert store.overrides() == [] and store.history() == []
    assert store.audit.query(action="settings.set") == []
    # the refusal is recorded: who tried what, and why
    (refused,) = store.audit.query(action="settings.refused")
    assert refused.actor == "operator"
    assert refused.target == f"setting:{level}:{key or '*'}:{name}"
    assert refused.details["value"] == str(value) and refused.details["reason"] == str(caught.value)


def test_unknown_setting(store: SettingsStore, op: Operator) -> None:
    with pytest.raises(UnknownSettingError, match="did you mean 'reminder_amount'"):
        store.set("remind_amount", "10", level="default", user=op)
    with pytest.raises(InvalidSettingError, match="expected a level: default, line, area"):
        store.set("reminder_amount", "10", level="building", user=op)
    assert len(store.audit.query(action="settings.refused")) == 2


def test_thresholds_must_stay_in_order(store: SettingsStore, op: Operator) -> None:
    # reminder (20.00) ≥ dunning (0.00) ≥ disconnection (0.00) by default
    with pytest.raises(InconsistentSettingsError) as caught:
        store.set("disconnection_threshold", "30", level="area", key="A1", user=op)
    assert str(caught.value) == (
        "disconnection_threshold at area A1: dunning_threshold 0.00 (from default "
        "(defaults.toml)) is below disconnection_threshold 30.00 (from area A1); "
        "dunning_threshold must be at least disconnection_threshold: raise "
        "dunning_threshold or lower disconnection_threshold"
    )
    store.set("dunning_threshold", "5.01", level="line", key="L1", user=op)
    with pytest.raises(InconsistentSettingsError, match=r"reminder_amount 5\.00 .* below dunning"):
        store.set("reminder_amount", "5", level="customer", key="C1", user=op, parents=C1)
    store.set("reminder_amount", "5", level="customer", key="C9", user=op)  # not under L1
    # negative thresholds (an overdraft allowance) are fine in order; each step must be
    with pytest.raises(InconsistentSettingsError, match="raise dunning_threshold or lower"):
        store.set("dunning_threshold", "-10", level="area", key="A2", user=op)
    store.set("disconnection_threshold", "-50", level="area", key="A2", user=op)
    store.set("dunning_threshold", "-10", level="area", key="A2", user=op)
    assert store.resolve(Scope(area="A2")).disconnection_threshold_fen == -5000


def test_several_values_change_together(store: SettingsStore, op: Operator) -> None:
    # one at a time the order matters (see above); together only the result counts
    changes = store.set_many(
        {"dunning_threshold": "-10", "disconnection_threshold": "-50", "notification_mode": "sms"},
        level="area",
        key="A2",
        user=op,
        comment="overdraft for A2",
    )
    assert [(c.spec.name, c.new, c.changed) for c in changes] == [
        ("dunning_threshold", -1000, True),
        ("disconnection_threshold", -5000, True),
        ("notification_mode", NotificationMode.SMS, True),
    ]
    with pytest.raises(InconsistentSettingsError):
        store.set_many(
            {"reminder_amount": "1", "dunning_threshold": "5"}, level="area", key="A2", user=op
        )
    effective = store.resolve(Scope(area="A2"))
    assert (effective.reminder_amount_fen, effective.dunning_threshold_fen) == (2000, -1000)
    assert len(store.history()) == 3
    assert len(store.audit.query(action="settings.refused")) == 2


def test_a_change_above_may_not_break_a_scope_below(store: SettingsStore, op: Operator) -> None:
    store.set("reminder_amount", "5", level="customer", key="C1", user=op)
    with pytest.raises(InconsistentSettingsError) as caught:
        store.set("dunning_threshold", "8", level="default", user=op)
    assert (
        "dunning_threshold at default: for customer C1: reminder_amount 5.00 (from customer C1)"
        in str(caught.value)
    )
    store.set("dunning_threshold", "5", level="default", user=op)  # equal is in order


def test_a_line_change_is_checked_against_the_customers_under_it(
    placed: SettingsStore, op: Operator
) -> None:
    placed.set("reminder_amount", "5", level="customer", key="C1", user=op)  # C1 is on L1
    with pytest.raises(InconsistentSettingsError) as caught:
        placed.set("dunning_threshold", "6", level="line", key="L1", user=op)
    assert str(caught.value).startswith(
        "dunning_threshold at line L1: for line L1 / area A1 / customer C1: reminder_amount "
        "5.00 (from customer C1) is below dunning_threshold 6.00 (from line L1)"
    )
    placed.set("dunning_threshold", "6", level="line", key="L2", user=op)  # C1 is not on L2


def test_removing_a_value_is_checked_too(placed: SettingsStore, op: Operator) -> None:
    placed.set("disconnection_threshold", "-30", level="customer", key="C1", user=op)
    placed.set("dunning_threshold", "-20", level="customer", key="C1", user=op)
    # without its own disconnection threshold C1 would inherit 0.00 > its dunning −20.00
    with pytest.raises(InconsistentSettingsError) as caught:
        placed.unset("disconnection_threshold", level="customer", key="C1", user=op)
    assert str(caught.value).startswith(
        "disconnection_threshold at customer C1: dunning_threshold -20.00 (from customer C1) "
        "is below disconnection_threshold 0.00 (from default (defaults.toml))"
    )
    assert placed.resolve(Scope(customer="C1")).disconnection_threshold_fen == -3000


# -- history, audit, permissions -----------------------------------------------------------


def test_every_change_is_kept_and_audited(
    store: SettingsStore, op: Operator, clock: SteppedClock
) -> None:
    store.set("reminder_amount", "15", level="area", key="A1", user=op, comment="winter")
    clock.set(START + timedelta(hours=1))
    store.set("reminder_amount", "16", level="area", key="A1", user=op)
    unchanged = store.set("reminder_amount", "16.00", level="area", key="A1", user=op)
    assert not unchanged.changed
    clock.set(START + timedelta(hours=2))
    store.unset("reminder_amount", level="area", key="A1", user=op)
    history = store.history(name="reminder_amount")
    assert [(h.old, h.new, h.at, h.by, h.comment) for h in history] == [
        (1600, ABSENT, START + timedelta(hours=2), "operator", ""),
        (1500, 1600, START + timedelta(hours=1), "operator", ""),
        (ABSENT, 1500, START, "operator", "winter"),
    ]
    entries = store.audit.query(action="settings.*")
    assert [(e.actor, e.action, e.target, e.details["old"], e.details["new"]) for e in entries] == [
        ("operator", "settings.set", "setting:area:A1:reminder_amount", None, "15.00"),
        ("operator", "settings.set", "setting:area:A1:reminder_amount", "15.00", "16.00"),
        ("operator", "settings.unset", "setting:area:A1:reminder_amount", "16.00", None),
    ]
    assert store.audit.verify().ok
    assert store.overrides() == []


def test_the_history_is_append_only(store: SettingsStore, op: Operator, engine: Engine) -> None:
    store.set("reminder_amount", "15", level="area", key="A1", user=op)
    with pytest.raises(sa.exc.DatabaseError, match="append-only"), engine.begin() as conn:
        conn.exec_driver_sql("DELETE FROM prepaid_setting_change")


def test_who_may_change_what(store: SettingsStore, staff: dict[str, Operator]) -> None:
    with pytest.raises(PermissionDeniedError, match="may not edit-settings"):
        store.set("reminder_amount", "15", level="area", key="A1", user=staff["customer-service"])
    with pytest.raises(PermissionDeniedError, match="may not guarantee"):
        store.set("power_guarantee", "true", level="customer", key="C1", user=staff["approver-l1"])
    store.set("power_guarantee", "true", level="customer", key="C1", user=staff["admin"])
    assert store.overrides()[0].updated_by == "root"


def test_supply_unit_scope(placed: SettingsStore, users: Users, staff: dict[str, Operator]) -> None:
    hz = users.add(
        "hz.op",
        display_name="杭州",
        password=PASSWORD,
        roles=[Role.OPERATOR],
        supply_unit="3301",
        by=staff["admin"],
    )
    placed.set("reminder_amount", "15", level="line", key="L1", user=hz)
    placed.set("reminder_amount", "14", level="customer", key="C1", user=hz)
    with pytest.raises(
        PermissionDeniedError,
        match="works for supply unit 3301 and may not edit-settings for supply unit 3302",
    ):
        placed.set("reminder_amount", "15", level="area", key="A3", user=hz)
    with pytest.raises(PermissionDeniedError, match="the default applies to every unit"):
        placed.set("reminder_amount", "15", level="default", user=hz)


# -- many accounts -------------------------------------------------------------------------


def _population(seed: int, n: int) -> tuple[list[str | None], list[str | None], list[str]]:
    rng = random.Random(seed)
    lines, areas, customers = [], [], []
    for i in range(n):
        line = f"L{rng.randrange(6)}"
        lines.append(line if rng.random() > 0.05 else None)
        areas.append(f"{line}-A{rng.randrange(15)}" if rng.random() > 0.05 else None)
        customers.append(f"C{i:05d}")
    return lines, areas, customers


def test_bulk_resolution_equals_one_by_one(store: SettingsStore, op: Operator) -> None:
    lines, areas, customers = _population(7, 3000)
    rng = random.Random(8)
    store.set("reminder_amount", "30", level="default", user=op)
    for i in range(0, 6, 2):
        store.set("reminder_amount", f"{25 + i}", level="line", key=f"L{i}", user=op)
        store.set("notification_mode", "paper", level="line", key=f"L{i}", user=op)
    for area in sorted({a for a in areas if a})[::4]:
        store.set("reminder_amount", f"{rng.randrange(10, 20)}.50", level="area", key=area, user=op)
    for customer in rng.sample(customers, 60):
        store.set(
            "reminder_amount", f"{rng.randrange(1, 9)}", level="customer", key=customer, user=op
        )
        store.set("notification_mode", "sms", level="customer", key=customer, user=op)
    snapshot = store.snapshot(["reminder_amount", "notification_mode"])
    for name in ("reminder_amount", "notification_mode"):
        bulk = snapshot.resolve_column(name, lines, areas, customers)
        # against the database, one query per account (a sample: it is slow) …
        for i in range(0, len(customers), 13):
            scope = Scope(line=lines[i], area=areas[i], customer=customers[i])
            assert bulk[i] == store.lookup(name, scope).value, scope
        # … and against the snapshot, account by account
        assert bulk == [
            snapshot.lookup(name, Scope(line=ln, area=ar, customer=c)).value
            for ln, ar, c in zip(lines, areas, customers, strict=True)
        ]
    reminders = snapshot.resolve_column("reminder_amount", lines, areas, customers)
    assert len(set(reminders)) > 10  # every level is in play


def test_set_based_sql_equals_one_by_one(
    store: SettingsStore, op: Operator, engine: Engine
) -> None:
    lines, areas, customers = _population(11, 500)
    meta = sa.MetaData()
    people = sa.Table(
        "t_people",
        meta,
        sa.Column("customer", sa.String(16), primary_key=True),
        sa.Column("line", sa.String(16)),
        sa.Column("area", sa.String(16)),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            sa.insert(people),
            [
                {"customer": c, "line": ln, "area": a}
                for ln, a, c in zip(lines, areas, customers, strict=True)
            ],
        )
    store.set("reminder_amount", "22", level="line", key="L1", user=op)
    store.set("reminder_amount", "11.11", level="area", key=next(a for a in areas if a), user=op)
    store.set("reminder_amount", "0", level="customer", key=customers[3], user=op)
    query = sa.select(
        people.c.customer,
        store.sql_fen(
            "reminder_amount", line=people.c.line, area=people.c.area, customer=people.c.customer
        ),
    ).order_by(people.c.customer)
    with engine.connect() as conn:
        by_sql = {c: fen for c, fen in conn.execute(query)}
    snapshot = store.snapshot()
    assert by_sql == dict(
        zip(
            customers,
            snapshot.resolve_column("reminder_amount", lines, areas, customers),
            strict=True,
        )
    )
    assert by_sql[customers[3]] == 0 and 2200 in by_sql.values() and 1111 in by_sql.values()
    with pytest.raises(InvalidSettingError, match="not an amount of money"):
        store.sql_fen("notification_mode", line=None, area=None, customer=people.c.customer)


def test_account_values_for_a_bulk_statement(
    placed: SettingsStore, op: Operator, engine: Engine
) -> None:
    placed.set("reminder_amount", "16", level="line", key="L1", user=op)
    placed.set("reminder_amount", "12", level="area", key="A1", user=op)
    placed.set("reminder_amount", "3", level="customer", key="C2", user=op)
    placed.set("notification_mode", "paper", level="line", key="L2", user=op)
    with engine.connect() as conn:
        fen: dict[int, int] = dict(conn.execute(placed.account_values("reminder_amount")).all())
        modes: dict[int, str] = dict(conn.execute(placed.account_values("notification_mode")).all())
    # accounts 1..3 are C1 (area A1), C2 (A1, own override), C3 (A3 on line L2)
    assert fen == {1: 1200, 2: 300, 3: 2000}
    assert modes == {1: "sms", 2: "sms", 3: "paper"}
    for account_id, customer in ((1, "C1"), (2, "C2"), (3, "C3")):
        effective = placed.resolve(Scope(customer=customer))
        assert fen[account_id] == effective.reminder_amount_fen
        assert modes[account_id] == effective.notification_mode.value


# -- protected hours of a customer ---------------------------------------------------------


def test_next_allowed_trip_time_follows_the_customers_settings(
    store: SettingsStore, op: Operator
) -> None:
    calendar = default_calendar()
    friday_evening = datetime(2026, 3, 6, 19)
    default = store.resolve(C1)
    assert next_allowed_trip_time(friday_evening, default, calendar) == datetime(2026, 3, 9, 8)
    store.set("protected_hours", "22:00-06:00", level="area", key="A1", user=op)
    store.set("protected_weekends", "false", level="area", key="A1", user=op)
    area = store.resolve(C1)
    assert next_allowed_trip_time(friday_evening, area, calendar) == friday_evening
    assert next_allowed_trip_time(datetime(2026, 3, 7, 23), area, calendar) == datetime(
        2026, 3, 8, 6
    )
    # public holidays still protected: Sunday 2026-10-04 → Thursday 2026-10-08 06:00
    assert next_allowed_trip_time(datetime(2026, 10, 4, 12), area, calendar) == datetime(
        2026, 10, 8, 6
    )
    store.set("protected_hours", "none", level="customer", key="C1", user=op)
    store.set("protected_holidays", "false", level="customer", key="C1", user=op)
    anytime = store.resolve(C1)
    assert anytime.protected_hours is None
    assert next_allowed_trip_time(datetime(2026, 10, 4, 23), anytime) == datetime(2026, 10, 4, 23)


# -- CLI -----------------------------------------------------------------------------------


def test_cli_show_set_unset_history(
    engine: Engine, users: Users, staff: dict[str, Operator], monkeypatch: pytest.MonkeyPatch
) -> None:
    add_places(engine)
    app = cli_app()
    db = ["--db", url_of(engine)]
    monkeypatch.setenv("FEIKONG_PASSWORD", PASSWORD)
    result = runner.invoke(
        app,
        [
            "settings",
            "set",
            "reminder-amount",
            "15.5",
            "--level",
            "area",
            "--key",
            "A1",
            "--user",
            "operator",
            "--comment",
            "winter",
            *db,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "reminder_amount at area A1: 15.50 (was not set)" in result.output
    result = runner.invoke(app, ["settings", "show", "--customer", "C1", *db])
    assert result.exit_code == 0, result.output
    assert "line L1 / area A1 / customer C1" in result.output
    row = next(ln for ln in result.output.splitlines() if "reminder_amount" in ln)
    assert "15.50" in row and "area A1" in row
    result = runner.invoke(app, ["settings", "show", "--customer", "C1", "--json", *db])
    shown = {s["name"]: s for s in json.loads(result.output)["settings"]}
    assert shown["reminder_amount"]["value"] == "15.50"
    assert shown["reminder_amount"]["source"] == {
        "level": "area",
        "key": "A1",
        "file": None,
        "text": "area A1",
    }
    assert shown["notice_lead_time"]["text"] == "1d"
    # refusals: bad value (2), wrong role (1), bad password (1), unknown customer (2)
    result = runner.invoke(
        app,
        [
            "settings",
            "set",
            "reminder_amount",
            "-1",
            "--level",
            "line",
            "--key",
            "L1",
            "--user",
            "operator",
            *db,
        ],
    )
    assert (
        result.exit_code == 2 and "reminder_amount at line L1: -1.00 yuan is below" in result.output
    )
    negative = ["disconnection_threshold", "-10", "--level", "line", "--key", "L1"]
    result = runner.invoke(app, ["settings", "set", *negative, "--user", "operator", *db])
    assert result.exit_code == 0 and "at line L1: -10.00 (was not set)" in result.output
    result = runner.invoke(
        app,
        [
            "settings",
            "set",
            "reminder_amount",
            "1",
            "--level",
            "line",
            "--key",
            "L1",
            "--user",
            "auditor",
            *db,
        ],
    )
    assert result.exit_code == 1 and "may not edit-settings" in result.output
    result = runner.invoke(
        app,
        [
            "settings",
            "set",
            "reminder_amount",
            "1",
            "--level",
            "customer",
            "--key",
            "C404",
            "--user",
            "operator",
            *db,
        ],
    )
    assert result.exit_code == 2 and "no customer 'C404'" in result.output
    result = runner.invoke(
        app,
        [
            "settings",
            "set",
            "reminder_amount",
            "1",
            "--level",
            "customer",
            "--key",
            "C404",
            "--line",
            "L1",
            "--any-key",
            "--user",
            "operator",
            *db,
        ],
    )
    assert result.exit_code == 0, result.output
    monkeypatch.setenv("FEIKONG_PASSWORD", "nope")
    result = runner.invoke(
        app,
        [
            "settings",
            "unset",
            "reminder_amount",
            "--level",
            "area",
            "--key",
            "A1",
            "--user",
            "operator",
            *db,
        ],
    )
    assert result.exit_code == 1 and "login refused" in result.output
    monkeypatch.setenv("FEIKONG_PASSWORD", PASSWORD)
    result = runner.invoke(
        app,
        [
            "settings",
            "unset",
            "reminder_amount",
            "--level",
            "area",
            "--key",
            "A1",
            "--user",
            "operator",
            "--json",
            *db,
        ],
    )
    assert result.exit_code == 0 and json.loads(result.output)["old"] == "15.50"
    result = runner.invoke(app, ["settings", "history", "reminder_amount", "--json", *db])
    assert [(h["key"], h["old"], h["new"]) for h in json.loads(result.output)] == [
        ("A1", "15.50", None),
        ("C404", None, "1.00"),
        ("A1", None, "15.50"),
    ]
    result = runner.invoke(app, ["settings", "history", *db])
    assert "winter" in result.output and "(removed)" in result.output
