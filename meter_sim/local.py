"""The local (card) prepay meter (本地费控电能表): the meter holds the money.

:class:`LocalMeter` is the common :class:`~meter_sim.meter.Meter` core plus a
:class:`~meter_sim.wallet.Wallet`, the prices it rates with, and the alarm and trip
ladder of PROTOCOL.md §4. Status word 1 bit6 (remote mode) is clear; status word 3
shows a money-type prepay meter, the pre-trip alarm for alarm level 1 and below, and
"local account not opened" until the account is opened (开户).

Prices (held in the meter, written with 14H like any parameter — 98 level in the
field, plaintext in test mode):

- TOU prices 04050101..04050104 (current set, tariffs 1..4; 040501FF reads all four);
- ladder table 1 of the current set, 040606FF (6 thresholds in kWh, 7 ladder prices,
  6 settlement dates ``MMDDhh``). The thresholds apply to the *cycle energy*: forward
  active energy since the last ladder settlement. All-zero thresholds = no ladder
  (ladder price 0). The unit that takes the cycle energy from ``E`` to ``E + 0.01``
  kWh is priced at ladder step ``#{t ≠ 0 : E ≥ t}``. The cycle is settled at 00:00
  of every valid settlement date (MM 01..12, DD 01..31; the hour is ignored), or at
  the monthly settlement (the 1st, 00:00) when no date is valid.
- **Current price rule (U):** 02800020 = TOU price 02800021 (of the tariff in force)
  + ladder price 0280000B (of the current step) — the 2013 combined scheme.

Deduction: every 0.01 kWh step of a tariff register is charged at that tariff's
combined price, exactly (the wallet carries sub-fen). A step that crosses a ladder
threshold is split at the threshold; within one accrual the tariffs are charged in
order 1..4. Before the account is opened nothing is deducted and nothing trips.

The money ladder drives the relay with :attr:`RelayReason.LOCAL
<meter_sim.relay.RelayReason>` and operator ``FFFFFFFF``, independently of remote
commands (the switch is open if either wants it): ALARM2 and ZERO open it, and the
customer may re-close once per level by pressing the button (:meth:`press_button`)
or inserting a valid card; MAX_OVERDRAFT opens it and *locks* it (button and card
refused) until a purchase leaves the remaining amount above the close-permit amount
(04001005). A purchase never trips a switch that is closed. Power guarantee (3AH)
suspends money trips (the money is still deducted). A local trip never sends the
automatic permit-close of remote trips. The meter wakes itself (one timer, shared
with the core) when the money could reach the next ladder level, at the earliest
one minute apart, so it trips on time without being polled.

Recharge over 03H (identity-authenticated session required, else SERR
``AUTH_FAILED``): DI 070101FF opens the account, 070102FF recharges. The payload
after the operator code is the 22-byte block of the [FW-A] layout::

    amount (4, HEX fen, big-endian) + purchase count (4, HEX, big-endian)
    + MAC1 (4) + customer number (6, BCD, high digit first) + MAC2 (4)

made by :meth:`SimulatedEncryptionMachine.recharge_block
<protocol.security.SimulatedEncryptionMachine.recharge_block>`. The reply is ``83``
with the DI + remaining amount (4, HEX fen, big-endian) + purchase count (4, HEX,
big-endian), the wallet encoding of 070002FF. Refusals (``C3`` + SERR): bad MAC →
``ESAM_VERIFY_FAILED``; same count → ``DUPLICATE_RECHARGE`` (no credit); a gap →
``RECHARGE_COUNT_ERROR``; another customer → ``CUSTOMER_MISMATCH``; above the
hoarding limit → ``HOARDING_EXCEEDED``; suspended ESAM → ``SUSPENDED``.

Cards: :meth:`LocalMeter.insert_card` / :meth:`LocalMeter.insert_card_file`.

``MeterConfig.extra`` keys of a local meter (besides those of every meter):

``limits``          ``{"alarm1_fen": 2000, ...}`` (fields of :class:`PrepayLimits`);
                    04001001..05 in ``parameters`` are honoured too
``remaining_fen``   initial remaining amount (or ``remaining_yuan``, e.g. 5.0): the
                    account starts opened for ``MeterConfig.customer_number`` (also
                    ``opened = true``)
``purchase_count``  initial purchase count of an opened account (default 0)
``prices``          TOU prices of tariffs 1..4 in yuan/kWh, e.g. ``["0.6", ...]``
``ladder``          ``{"thresholds": [6 kWh], "prices": [7 yuan], "settlement_dates":
                    [6 "MMDDhh"]}``
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections import deque
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, ClassVar, Final

from breaker_sim import BreakerLink
from protocol import ErrorWord, SecurityErrorWord, StatusWord1, StatusWord3
from protocol.clock import Clock
from protocol.datatypes import LadderTable
from protocol.di import decode_value, encode_value
from protocol.errors import DataError, SecurityError
from protocol.messages import Message, SecurityErrorReply, SecurityReply, SecurityRequest
from protocol.security import MacError, NoSessionError, SuspendedError

from .card import Card, CardError, CardType, ReturnWrite, read_card, write_card
from .config import BreakerKind, MeterConfig, MeterKind
from .errors import Refused
from .freeze import DAILY_FREEZES_KEPT
from .meter import Meter
from .meter_clock import DAY, from_seconds
from .parameters import PARAMETERS, Access, ParameterSpec, specs
from .records import METER_OPERATOR
from .relay import RelayReason
from .tou import DEFAULT_TOU, TARIFFS, TouSchedule
from .wallet import MAX_AMOUNT_FEN, AlarmLevel, PrepayLimits, Purchase, RechargeError, Wallet

__all__ = [
    "CARD_PARAMETERS",
    "LADDER_DI",
    "LOCAL_PARAMETERS",
    "OPEN_ACCOUNT_DI",
    "RECHARGE_DI",
    "CardRefused",
    "LocalMeter",
]

_log = logging.getLogger(__name__)

OPEN_ACCOUNT_DI: Final = 0x070101FF
RECHARGE_DI: Final = 0x070102FF
PRICE_DIS: Final = tuple(0x04050101 + k for k in range(TARIFFS))
"""TOU prices of tariffs 1..4, current set."""
LADDER_DI: Final = 0x040606FF
"""Ladder table 1 of the current set (the one the meter rates with)."""
LIMIT_DIS: Final[Mapping[int, str]] = {
    0x04001001: "alarm1_fen",
    0x04001002: "alarm2_fen",
    0x04001003: "overdraft_limit_fen",
    0x04001004: "hoarding_limit_fen",
    0x04001005: "close_permit_fen",
}
CARD_PARAMETERS: Final = frozenset(LIMIT_DIS.values())
"""Parameters a card may carry (fen): the fields of :class:`PrepayLimits`."""

DEFAULT_PRICE: Final = Decimal("0.5000")
NO_LADDER: Final = LadderTable((Decimal("0.00"),) * 6, (Decimal("0.0000"),) * 7, ("999999",) * 6)
LOCAL_PARAMETERS: Final[Mapping[int, ParameterSpec]] = {
    **PARAMETERS,
    **specs(
        *(ParameterSpec(di, Access.SECURE, DEFAULT_PRICE) for di in PRICE_DIS),
        ParameterSpec(LADDER_DI, Access.SECURE, NO_LADDER),
    ),
}
"""The parameters of a local meter: the common ones plus its prices."""

_FEN_E6: Final = 10_000
_MIN_CHECK_S: Final = 60.0
"""The money is checked at most once a minute (shared-clock seconds) by the timer."""
_LOOKAHEAD_DAYS: Final = 7
_PURCHASE_FIELD_SIZES: Final = (5, 2, 4, 4, 4, 4)


class CardRefused(CardError):
    """A genuine card the meter does not take (wrong customer, count gap, hoarding)."""

    def __init__(self, message: str, serr: SecurityErrorWord) -> None:
        super().__init__(message)
        self.serr = serr


def _yuan(fen: int) -> Decimal:
    return Decimal(fen).scaleb(-2)


class LocalMeter(Meter):
    """A local (card) prepay meter; see the module doc."""

    KIND: ClassVar[MeterKind] = MeterKind.LOCAL
    PARAMETERS: ClassVar[Mapping[int, ParameterSpec]] = LOCAL_PARAMETERS

    __slots__ = (
        "_cycle_ckwh",
        "_illegal_inserts",
        "_ladder_e4",
        "_lockout",
        "_money_due",
        "_money_freezes",
        "_prices_e4",
        "_schedule",
        "_settlement_dates",
        "_thresholds",
        "wallet",
    )

    def __init__(
        self,
        config: MeterConfig,
        clock: Clock,
        breaker: BreakerLink,
        *,
        master_key: bytes,
        schedule: TouSchedule | None = None,
    ) -> None:
        extra = config.extra
        if schedule is None:
            tou = extra.get("tou")
            schedule = TouSchedule.parse(str(tou)) if tou else DEFAULT_TOU
        super().__init__(config, clock, breaker, master_key=master_key, schedule=schedule)
        self._schedule = schedule
        self._cycle_ckwh = 0
        self._illegal_inserts = 0
        self._lockout = False
        self._money_due: float | None = None
        self._money_freezes: deque[tuple[int, int, int, int]] = deque(maxlen=DAILY_FREEZES_KEPT)
        self._prices_e4: tuple[int, ...] = ()
        self._ladder_e4: tuple[int, ...] = ()
        self._thresholds: tuple[int, ...] = ()
        self._settlement_dates: frozenset[tuple[int, int]] = frozenset()
        self.wallet = Wallet(limits=self._initial_limits(extra))
        prices = extra.get("prices")
        if prices is not None:
            for di, price in zip(PRICE_DIS, list(prices), strict=False):
                self.parameters.set_raw(di, encode_value(di, Decimal(str(price))))
        ladder = extra.get("ladder")
        if ladder is not None:
            table = LadderTable(
                tuple(Decimal(str(v)) for v in ladder.get("thresholds", [0] * 6)),
                tuple(Decimal(str(v)) for v in ladder.get("prices", [0] * 7)),
                tuple(str(v) for v in ladder.get("settlement_dates", ["999999"] * 6)),
            )
            _check_ladder(table)
            self.parameters.set_raw(LADDER_DI, encode_value(LADDER_DI, table))
        if "remaining_fen" in extra or "remaining_yuan" in extra or extra.get("opened"):
            self.wallet.customer_number = config.customer_number
            self.wallet.remaining_fen = _initial_fen(extra)
            self.wallet.purchase_count = int(extra.get("purchase_count", 0))
            if not 0 <= self.wallet.remaining_fen <= MAX_AMOUNT_FEN:
                raise ValueError(f"remaining_fen must be 0..{MAX_AMOUNT_FEN}")
        self._load_prices()

    def _initial_limits(self, extra: Mapping[str, Any]) -> PrepayLimits:
        limits = PrepayLimits()
        given = {str(k).upper() for k in dict(extra.get("parameters", {}))}
        for di, name in LIMIT_DIS.items():
            if f"{di:08X}" in given:
                fen = int(decode_value(di, self.parameters.raw(di)).value * 100)
                limits = dataclasses.replace(limits, **{name: fen})
        changes = {str(k): int(v) for k, v in dict(extra.get("limits", {})).items()}
        unknown = set(changes) - CARD_PARAMETERS
        if unknown:
            raise ValueError(f"unknown limits {sorted(unknown)}; use {sorted(CARD_PARAMETERS)}")
        return dataclasses.replace(limits, **changes)

    # ------------------------------------------------------------------ prices

    def _load_prices(self) -> None:
        """Cache the prices and the ladder as integers (after any change of them)."""
        self._prices_e4 = tuple(
            int(decode_value(di, self.parameters.raw(di)).value * 10_000) for di in PRICE_DIS
        )
        table: LadderTable = decode_value(LADDER_DI, self.parameters.raw(LADDER_DI)).value
        self._thresholds = tuple(sorted(int(t * 100) for t in table.thresholds if t > 0))
        self._ladder_e4 = tuple(int(p * 10_000) for p in table.prices)
        dates = set()
        for text in table.settlement_dates:
            month, day = int(text[:2]), int(text[2:4])
            if 1 <= month <= 12 and 1 <= day <= 31:
                dates.add((month, day))
        self._settlement_dates = frozenset(dates)

    @property
    def cycle_energy_ckwh(self) -> int:
        """Forward energy (0.01 kWh) since the last ladder settlement."""
        return self._cycle_ckwh

    @property
    def illegal_inserts(self) -> int:
        """Cards refused as not genuine or not this customer's (非法插卡次数)."""
        return self._illegal_inserts

    def ladder_step(self, energy_ckwh: int | None = None) -> int:
        """The ladder step (0..6) of the next unit at cycle energy ``energy_ckwh``."""
        energy = self._cycle_ckwh if energy_ckwh is None else energy_ckwh
        return sum(1 for t in self._thresholds if energy >= t)

    def ladder_price_e4(self) -> int:
        """0280000B in 1e-4 yuan/kWh: 0 without a ladder."""
        if not self._thresholds:
            return 0
        return self._ladder_e4[self.ladder_step()]

    def current_tariff(self) -> int:
        now = int(self.clock.now_s())
        return self._schedule.tariff_at(now % DAY // 60)

    def tou_price_e4(self, tariff: int | None = None) -> int:
        """02800021 in 1e-4 yuan/kWh (the tariff in force, or ``tariff`` 1..4)."""
        return self._prices_e4[(tariff or self.current_tariff()) - 1]

    def price_e4(self) -> int:
        """02800020 = 02800021 + 0280000B (see the module doc)."""
        return self.tou_price_e4() + self.ladder_price_e4()

    # ------------------------------------------------------------------ hooks

    def _status1_bits(self) -> int:
        return StatusWord1.OVERDRAFT if self.wallet.overdraft_fen > 0 else 0

    def _status3_bits(self) -> int:
        wallet = self.wallet
        if not wallet.opened:
            return StatusWord3.LOCAL_NOT_OPENED
        if wallet.level >= AlarmLevel.ALARM1:
            return StatusWord3.PRE_TRIP_ALARM
        return 0

    def _on_energy(self, steps: list[int], at_s: int) -> None:
        opened = self.wallet.opened
        thresholds = self._thresholds
        for k, count in enumerate(steps):
            tou = self._prices_e4[k]
            while count > 0:
                energy = self._cycle_ckwh
                take = count
                ladder = 0
                if thresholds:
                    step = self.ladder_step(energy)
                    ladder = self._ladder_e4[step]
                    if step < len(thresholds):
                        take = min(count, thresholds[step] - energy)
                if opened:
                    self.wallet.deduct(take, tou + ladder)
                self._cycle_ckwh = energy + take
                count -= take

    def _on_day(self, day: int) -> None:
        wallet = self.wallet
        self._money_freezes.append(
            (day * (DAY // 60), wallet.remaining_fen, wallet.purchase_count, wallet.overdraft_fen)
        )
        date = from_seconds(day * DAY)
        if self._settlement_dates:
            settle = (date.month, date.day) in self._settlement_dates
        else:
            settle = date.day == 1
        if settle:
            self._cycle_ckwh = 0

    async def _after_touch(self) -> None:
        await self._evaluate_money(self.clock.shared_s())

    def _next_due(self) -> float | None:
        due = super()._next_due()
        money = self._money_due
        if money is None:
            return due
        return money if due is None else min(due, money)

    async def _on_due(self, shared_s: float) -> None:
        await super()._on_due(shared_s)
        if self._money_due is not None and self._money_due <= shared_s:
            await self._evaluate_money(shared_s)

    def _wallet(self) -> tuple[int, int]:
        return self.wallet.remaining_fen, self.wallet.purchase_count

    # ------------------------------------------------------------------ the money ladder

    def _money_wants_open(self) -> bool:
        wallet = self.wallet
        if not wallet.opened or self._guaranteed:
            return False
        return self._lockout or wallet.wants_open

    async def _evaluate_money(self, shared_s: float) -> None:
        """Apply the ladder to the relay; plan the next money check from ``shared_s``."""
        wallet = self.wallet
        previous, self._money_due = self._money_due, None
        if wallet.opened and wallet.level is AlarmLevel.MAX_OVERDRAFT:
            self._lockout = True
        want = self._money_wants_open()
        has = bool(self.relay.open_reasons & RelayReason.LOCAL)
        if want and not has:
            _log.info("%s: money trip (%s)", self.address, wallet.level.name)
            await self._relay_open(RelayReason.LOCAL, METER_OPERATOR, auto_permit=False)
        elif has and not want:
            await self._relay_release(RelayReason.LOCAL, METER_OPERATOR)
        due = self._plan_money_check(shared_s)
        if due is not None and previous is not None and shared_s < previous < due:
            due = previous  # an earlier check is always safe: keep the armed timer
        self._money_due = due
        self._arm()

    def _headroom_fen(self) -> int | None:
        """Fen still to be spent before the ladder level changes (None: it cannot)."""
        wallet = self.wallet
        lim = wallet.limits
        remaining = wallet.remaining_fen
        if remaining > lim.alarm1_fen:
            return remaining - lim.alarm1_fen
        if remaining > lim.alarm2_fen:
            return remaining - lim.alarm2_fen
        if remaining > 0:
            return remaining
        headroom = lim.overdraft_limit_fen - wallet.overdraft_fen
        return headroom if headroom > 0 else None

    def _plan_money_check(self, shared_s: float) -> float | None:
        """When the money could reach the next level at the fastest possible spending."""
        wallet = self.wallet
        if not wallet.opened or not self.relay.flowing:
            return None
        headroom = self._headroom_fen()
        if headroom is None:
            return None
        max_price = max(self._prices_e4) + (max(self._ladder_e4) if self._thresholds else 0)
        if max_price <= 0:
            return None
        need_e6 = max(0, headroom * _FEN_E6 - wallet.residue_e6)
        need_units = -(-need_e6 // max_price) * 1000  # 0.01 kWh → 1e-5 kWh
        profile = self.profile
        today = self._accrued_s // DAY
        max_units = max(profile.daily_units(d) for d in range(today, today + _LOOKAHEAD_DAYS + 1))
        weights = profile.table.weights
        rate_den = max_units * max(weights)
        if rate_den <= 0:
            return None
        seconds = need_units * sum(weights) * 3600 // rate_den
        seconds = min(seconds, _LOOKAHEAD_DAYS * DAY)
        return shared_s + max(_MIN_CHECK_S, float(seconds))

    async def _customer_reclose(self) -> bool:
        """Button or card: use the one re-close of ALARM2/ZERO. True if money lets it close."""
        wallet = self.wallet
        if self._lockout:
            return False
        if wallet.opened and self.relay.open_reasons & RelayReason.LOCAL:
            wallet.reclose()
        await self._evaluate_money(self.clock.shared_s())
        return not self._money_wants_open()

    async def press_button(self) -> bool:
        """The customer presses the button: the one re-close at ALARM2/ZERO, refused at
        MAX_OVERDRAFT; a built-in relay that may close then closes. Returns whether the
        switch is closed afterwards."""
        async with self._lock:
            await self._touch()
            await self._customer_reclose()
        return await super().press_button()

    async def _close_internal(self) -> None:
        """A built-in relay released by the card closes at once (the card is the button)."""
        relay = self.relay
        if (
            self._config.breaker is BreakerKind.INTERNAL
            and relay.close_allowed
            and not relay.feedback_closed
        ):
            await relay.manual_close()
            await self._observe()

    # ------------------------------------------------------------------ purchases

    def _purchase(self, open_account: bool, customer: str, amount_fen: int, count: int) -> Purchase:
        """Credit a purchase (raises :class:`RechargeError`); the money ladder follows."""
        wallet = self.wallet
        when = self.clock.now().replace(microsecond=0)
        if open_account:
            purchase = wallet.open_account(customer, amount_fen, count, when)
        else:
            purchase = wallet.recharge(customer, amount_fen, count, when)
        if wallet.customer_number is not None:
            self.customer_number = wallet.customer_number
        if wallet.remaining_fen > wallet.limits.close_permit_fen:
            self._lockout = False
        level = wallet.level
        if (
            not self.relay.open_reasons & RelayReason.LOCAL
            and level in (AlarmLevel.ALARM2, AlarmLevel.ZERO)
            and wallet.wants_open
        ):
            wallet.reclosed_at = level  # a purchase never trips a closed switch
        _log.info(
            "%s: purchase %d of %.2f yuan: remaining %.2f yuan",
            self.address,
            count,
            amount_fen / 100,
            wallet.remaining_fen / 100,
        )
        return purchase

    async def _security(self, request: SecurityRequest) -> Message:
        if request.di not in (OPEN_ACCOUNT_DI, RECHARGE_DI):
            return await super()._security(request)
        if not self.auth.valid(self.clock.shared_s()):
            if self.auth.esam.suspended:
                return SecurityErrorReply(SecurityErrorWord.SUSPENDED)
            _log.info("%s: recharge without identity authentication", self.address)
            return SecurityErrorReply(SecurityErrorWord.AUTH_FAILED)
        try:
            amount, count, customer = self.auth.esam.open_recharge_block(request.payload)
        except SuspendedError:
            return SecurityErrorReply(SecurityErrorWord.SUSPENDED)
        except NoSessionError:
            return SecurityErrorReply(SecurityErrorWord.AUTH_FAILED)
        except MacError as exc:
            _log.warning("%s: recharge refused: %s", self.address, exc)
            return SecurityErrorReply(SecurityErrorWord.ESAM_VERIFY_FAILED)
        except SecurityError as exc:
            _log.warning("%s: recharge refused: %s", self.address, exc)
            return SecurityErrorReply(SecurityErrorWord.OTHER)
        try:
            self._purchase(request.di == OPEN_ACCOUNT_DI, customer, amount, count)
        except RechargeError as exc:
            _log.info("%s: recharge refused: %s", self.address, exc)
            return SecurityErrorReply(exc.serr)
        await self._evaluate_money(self.clock.shared_s())
        wallet = self.wallet
        payload = wallet.remaining_fen.to_bytes(4, "big") + wallet.purchase_count.to_bytes(4, "big")
        return SecurityReply(request.di, payload)

    # ------------------------------------------------------------------ cards

    async def insert_card(self, card: Card) -> ReturnWrite:
        """The customer inserts a card (插卡); returns the return-write (返写).

        Raises :class:`CardError` for a card that is not genuine (MAC; the illegal-insert
        counter goes up), :class:`CardRefused` for a genuine card the meter does not take.
        A purchase already credited (same count) adds nothing but is a valid insertion:
        it re-closes and is written back.
        """
        async with self._lock:
            await self._touch()
            try:
                card.verify(self.auth.esam)
            except CardError:
                self._illegal_inserts += 1
                raise
            wallet = self.wallet
            if wallet.opened and card.customer_number != wallet.customer_number:
                self._illegal_inserts += 1
                raise CardRefused(
                    f"card of customer {card.customer_number} does not belong to this meter "
                    f"(customer {wallet.customer_number})",
                    SecurityErrorWord.CUSTOMER_MISMATCH,
                )
            unknown = set(card.parameters) - CARD_PARAMETERS
            if unknown:
                raise CardError(f"card parameters {sorted(unknown)} are not known to the meter")
            old_limits = wallet.limits
            try:
                wallet.limits = dataclasses.replace(old_limits, **card.parameters)
            except (TypeError, ValueError) as exc:
                raise CardError(f"card parameters are not valid: {exc}") from None
            try:
                self._purchase(
                    card.type is CardType.OPEN,
                    card.customer_number,
                    card.amount_fen,
                    card.purchase_count,
                )
            except RechargeError as exc:
                if exc.serr is not SecurityErrorWord.DUPLICATE_RECHARGE:
                    wallet.limits = old_limits
                    raise CardRefused(str(exc), exc.serr) from None
                _log.info("%s: card %s: %s", self.address, card.serial, exc)
            await self._customer_reclose()
            await self._close_internal()
            return ReturnWrite(
                str(self.address),
                wallet.remaining_fen,
                wallet.overdraft_fen,
                wallet.purchase_count,
                self._illegal_inserts,
                self.clock.now().replace(microsecond=0).isoformat(),
            )

    async def insert_card_file(self, path: str | os.PathLike[str]) -> ReturnWrite:
        """Insert the card in file ``path`` and write the return-write back into it."""
        card = read_card(path)
        returned = await self.insert_card(card)
        write_card(path, dataclasses.replace(card, returned=returned))
        return returned

    # ------------------------------------------------------------------ reads and writes

    def read_value(self, di: int) -> bytes:
        wallet = self.wallet
        if di == 0x00900200:
            return encode_value(di, _yuan(wallet.remaining_fen))
        if di == 0x00900201:
            return encode_value(di, _yuan(wallet.overdraft_fen))
        if di >> 16 == 0x0090:
            raise Refused(ErrorWord.NO_DATA, "a money-type meter keeps no energy balance")
        if di == 0x0280000B:
            return encode_value(di, Decimal(self.ladder_price_e4()).scaleb(-4))
        if di == 0x02800020:
            return encode_value(di, Decimal(self.price_e4()).scaleb(-4))
        if di == 0x02800021:
            return encode_value(di, Decimal(self.tou_price_e4()).scaleb(-4))
        if di in LIMIT_DIS:
            return encode_value(di, _yuan(getattr(wallet.limits, LIMIT_DIS[di])))
        if di == 0x040501FF:
            return b"".join(self.parameters.raw(d) for d in PRICE_DIS)
        if di >> 16 == 0x0333:
            return self._purchase_value(di)
        if di >> 8 == 0x050608:
            return self._money_freeze_value(di)
        return super().read_value(di)

    def _purchase_value(self, di: int) -> bytes:
        field, n = di >> 8 & 0xFF, di & 0xFF
        if not (1 <= field <= 6 and 1 <= n <= 10):
            raise Refused(ErrorWord.NO_DATA, f"{di:08X}: no such purchase record item")
        purchases = self.wallet.purchases
        if n > len(purchases):
            return bytes(_PURCHASE_FIELD_SIZES[field - 1])
        p = purchases[n - 1]
        if field == 1:
            return encode_value(di, p.time)
        if field == 2:
            return encode_value(di, p.count % 10_000)
        fen = (p.amount_fen, p.remaining_before_fen, p.remaining_after_fen, p.cumulative_fen)
        return encode_value(di, _yuan(fen[field - 3] % (MAX_AMOUNT_FEN + 1)))

    def _money_freeze_value(self, di: int) -> bytes:
        n = di & 0xFF
        freezes = self._money_freezes
        if n <= self._config.faults.missing_freeze_days or not 1 <= n <= len(freezes):
            raise Refused(ErrorWord.NO_DATA, f"{di:08X}: no such daily freeze")
        _, remaining, count, overdraft = freezes[-n]
        return encode_value(
            di,
            {
                "remaining": _yuan(remaining),
                "purchase_count": count % 10_000,
                "overdraft": _yuan(overdraft),
            },
        )

    def _apply_write(self, di: int, raw: bytes, value: Any) -> None:
        if di in LIMIT_DIS:
            fen = int(Decimal(value) * 100)
            try:
                self.wallet.limits = dataclasses.replace(self.wallet.limits, **{LIMIT_DIS[di]: fen})
            except ValueError as exc:
                raise Refused(ErrorWord.OTHER, str(exc)) from None
            return
        if di == LADDER_DI:
            try:
                _check_ladder(value)
            except DataError as exc:
                raise Refused(ErrorWord.OTHER, str(exc)) from None
        super()._apply_write(di, raw, value)
        if di in PRICE_DIS or di == LADDER_DI:
            self._load_prices()

    # ------------------------------------------------------------------ state

    def _state_extra(self) -> dict[str, Any]:
        return {
            "wallet": self.wallet.to_state(),
            "cycle_ckwh": self._cycle_ckwh,
            "illegal_inserts": self._illegal_inserts,
            "lockout": self._lockout,
            "money_freezes": [list(f) for f in self._money_freezes],
        }

    def _restore_extra(self, state: Mapping[str, Any]) -> None:
        self.wallet = Wallet.from_state(dict(state["wallet"]))
        self._cycle_ckwh = int(state["cycle_ckwh"])
        self._illegal_inserts = int(state["illegal_inserts"])
        self._lockout = bool(state["lockout"])
        freezes = [tuple(int(v) for v in row) for row in state["money_freezes"]]
        if any(len(row) != 4 for row in freezes):
            raise ValueError("money freezes must be rows of 4 integers")
        self._money_freezes = deque(
            ((r[0], r[1], r[2], r[3]) for r in freezes), maxlen=DAILY_FREEZES_KEPT
        )
        self._load_prices()
        self._money_due = self._plan_money_check(self.clock.shared_s())


def _initial_fen(extra: Mapping[str, Any]) -> int:
    if "remaining_yuan" in extra:
        fen = Decimal(str(extra["remaining_yuan"])) * 100
        if fen != fen.to_integral_value():
            raise ValueError(f"remaining_yuan must be whole fen, got {extra['remaining_yuan']}")
        return int(fen)
    return int(extra.get("remaining_fen", 0))


def _check_ladder(table: Any) -> None:
    """Ladder thresholds in use (non-zero) must ascend ([FW-A]); raise :class:`DataError`."""
    if not isinstance(table, LadderTable):
        raise DataError(f"a ladder table is needed, got {table!r}")
    used = [t for t in table.thresholds if t > 0]
    if used != sorted(set(used)) or any(t < 0 for t in table.thresholds):
        raise DataError(f"ladder thresholds must ascend, got {list(table.thresholds)}")
