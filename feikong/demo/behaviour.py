"""How the demo's customers behave (用户行为模型): when they pay, and their breakers.

Every remote (远程费控) customer gets a :class:`Profile` drawn once from the scenario's
shares and the seed:

- ``on-reminder`` — pays a few days after the low-balance reminder (余额不足提醒);
- ``after-dunning`` — pays only after the dunning notice (催费);
- ``after-cutoff`` — pays only once the power is cut (a trip);
- ``never`` — never pays (the platform trips again when they close the breaker).

A payment covers the arrears plus ``topup_days`` of the customer's average
consumption, rounded up to 10 yuan, and goes through the CIS adapter
(:class:`prepaid.cis.PaymentService`: credited once per payment id, re-rated at once);
the platform reconnects the customer from there. After a trip and the meter's
permit-close, a customer who paid closes the breaker by hand, and so does a share of
those who did not (``reclose_unpaid``) — they are tripped again at the next relay check.
Card (本地费控) customers top up their meter, not the platform, and are left out.
"""

from __future__ import annotations

import enum
import logging
import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from .scenario import Behaviour

__all__ = ["Customers", "PayDecision", "Profile", "draw_profiles"]

log = logging.getLogger(__name__)

PRICE_FEN_PER_KWH = 60
"""What a customer reckons a kWh costs when choosing an amount (not used for rating)."""


class Profile(enum.StrEnum):
    ON_REMINDER = "on-reminder"
    AFTER_DUNNING = "after-dunning"
    AFTER_CUTOFF = "after-cutoff"
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class Habit:
    """One customer's drawn behaviour."""

    profile: Profile
    delay_days: int
    topup_days: int
    recloses: bool


def draw_profiles(account_ids: list[int], behaviour: Behaviour, seed: int) -> dict[int, Habit]:
    """A habit per account, the same for the same seed."""
    rng = random.Random(seed * 7919 + 17)
    b = behaviour
    edges = (
        (b.pay_on_reminder, Profile.ON_REMINDER),
        (b.pay_on_reminder + b.pay_after_dunning, Profile.AFTER_DUNNING),
        (b.pay_on_reminder + b.pay_after_dunning + b.pay_after_cutoff, Profile.AFTER_CUTOFF),
    )
    out: dict[int, Habit] = {}
    for account in sorted(account_ids):
        x = rng.random()
        profile = next((p for edge, p in edges if x < edge), Profile.NEVER)
        out[account] = Habit(
            profile=profile,
            delay_days=rng.randint(0, b.delay_days_max),
            topup_days=rng.randint(b.topup_days_min, b.topup_days_max),
            recloses=rng.random() < b.reclose_unpaid,
        )
    return out


@dataclass(frozen=True, slots=True)
class PayDecision:
    account_id: int
    customer_no: str
    amount_fen: int
    why: Profile


class Customers:
    """The remote customers of the district: who pays today, whose breaker to close."""

    def __init__(self, engine: Engine, behaviour: Behaviour, seed: int) -> None:
        self.engine = engine
        with engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT a.id, a.customer_no, a.meter_address, s.avg_daily_ckwh"
                    " FROM prepaid_account a JOIN prepaid_rating_state s ON s.account_id = a.id"
                    " WHERE a.fee_control_mode = 'remote' AND a.active"
                )
            ).all()
        self.customer_no = {int(r.id): str(r.customer_no) for r in rows}
        self.meter = {int(r.id): str(r.meter_address) for r in rows}
        self.avg_ckwh = {int(r.id): int(r.avg_daily_ckwh) for r in rows}
        self.habits = draw_profiles(list(self.customer_no), behaviour, seed)
        self.paid_at: dict[int, datetime] = {}
        self.payments = 0
        self.paid_fen = 0

    def profile_counts(self) -> dict[str, int]:
        counts = dict.fromkeys((p.value for p in Profile), 0)
        for habit in self.habits.values():
            counts[habit.profile.value] += 1
        return counts

    def _triggers(self) -> dict[int, dict[Profile, datetime]]:
        """Per account: when it was last reminded, dunned and tripped (open episodes only)."""
        out: dict[int, dict[Profile, datetime]] = {}
        queries = (
            (
                Profile.ON_REMINDER,
                "SELECT account_id, max(opened_at) FROM prepaid_reminder"
                " WHERE closed_at IS NULL GROUP BY account_id",
            ),
            (
                Profile.AFTER_DUNNING,
                "SELECT account_id, max(created_at) FROM prepaid_dunning"
                " WHERE closed_at IS NULL GROUP BY account_id",
            ),
            (
                Profile.AFTER_CUTOFF,
                "SELECT account_id, max(first_trip_at) FROM prepaid_disconnection"
                " WHERE first_trip_at IS NOT NULL AND ended_at IS NULL GROUP BY account_id",
            ),
        )
        with self.engine.connect() as conn:
            for profile, query in queries:
                for account, when in conn.execute(sa.text(query)):
                    if when is None:
                        continue
                    if isinstance(when, str):
                        when = datetime.fromisoformat(when)
                    out.setdefault(int(account), {})[profile] = when
        return out

    def due(self, now: datetime) -> list[PayDecision]:
        """Who pays now, and how much (see the module doc)."""
        from prepaid.balance import realtime_balances

        order = (Profile.ON_REMINDER, Profile.AFTER_DUNNING, Profile.AFTER_CUTOFF)
        triggers = self._triggers()
        wanted: list[tuple[int, Profile]] = []
        for account, seen in triggers.items():
            habit = self.habits.get(account)
            if habit is None or habit.profile is Profile.NEVER:
                continue
            # a customer who pays on the reminder also pays when dunned or cut off
            rank = order.index(habit.profile)
            hits = [seen[p] for p in order[rank:] if p in seen]
            if not hits:
                continue
            trigger = min(hits)
            if now < trigger + timedelta(days=habit.delay_days):
                continue
            last = self.paid_at.get(account)
            if last is not None and last >= trigger:
                continue
            wanted.append((account, habit.profile))
        if not wanted:
            return []
        balances = realtime_balances(self.engine, [a for a, _ in wanted])
        out = []
        for account, why in wanted:
            balance = balances[account].realtime_fen
            habit = self.habits[account]
            kwh = self.avg_ckwh.get(account, 800) / 100 * habit.topup_days
            amount = max(0, -balance) + int(kwh * PRICE_FEN_PER_KWH)
            amount = max(1000, math.ceil(amount / 1000.0) * 1000)  # whole 10 yuan
            out.append(PayDecision(account, self.customer_no[account], amount, why))
        return out

    def paid(self, decision: PayDecision, at: datetime) -> None:
        self.paid_at[decision.account_id] = at
        self.payments += 1
        self.paid_fen += decision.amount_fen

    def to_reclose(self, reachable: set[str]) -> list[tuple[str, bool, str]]:
        """Meters (among ``reachable``: breakers with a lever, on Modbus) of tripped
        customers who would close the breaker by hand, and whether they paid (a paid
        customer always closes; an unpaid one if their habit says so), with the episode."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.text(
                    "SELECT account_id, meter_address, state, number FROM prepaid_disconnection"
                    " WHERE first_trip_at IS NOT NULL"
                    " AND (ended_at IS NULL OR state = 'ended')"
                )
            ).all()
        out: list[tuple[str, bool, str]] = []
        for account, meter, state, number in rows:
            if str(meter) not in reachable:
                continue
            paid = state == "ended"
            habit = self.habits.get(int(account))
            if paid or (habit is not None and habit.recloses and state == "disconnected"):
                out.append((str(meter), paid, str(number)))
        return out

    def summary(self) -> dict[str, Any]:
        return {
            "profiles": self.profile_counts(),
            "payments": self.payments,
            "paid_fen": self.paid_fen,
        }
