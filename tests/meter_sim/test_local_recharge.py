"""Purchases on a local meter: 03H 070101FF/070102FF through a MasterClient, and cards."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from meter_sim.card import CardError, CardType, read_card, write_card
from meter_sim.local import OPEN_ACCOUNT_DI, RECHARGE_DI, CardRefused
from protocol import AbnormalReplyError, SecurityErrorReply, SecurityErrorWord, StatusWord3

from .test_local_rig import CUSTOMER, LocalRig, card, local_config, local_rig

OPEN = CardType.OPEN


def wallet_reply(payload: bytes) -> tuple[int, int]:
    assert len(payload) == 8
    return int.from_bytes(payload[:4], "big"), int.from_bytes(payload[4:], "big")


async def serr(r: LocalRig, di: int, amount: int, count: int, **kw: object) -> SecurityErrorWord:
    reply = await r.refused(di, amount, count, **kw)
    assert isinstance(reply, SecurityErrorReply)
    return reply.error


async def test_open_and_recharge_over_03h() -> None:
    cfg = local_config(extra={"limits": {"hoarding_limit_fen": 50_000}})
    async with local_rig(cfg) as r:
        session = await r.authenticate()
        payload = await r.recharge(OPEN_ACCOUNT_DI, 10_000, 1, session=session)
        assert wallet_reply(payload) == (10_000, 1)
        assert StatusWord3.LOCAL_NOT_OPENED not in await r.read(0x04000503)
        assert await r.read(0x0400040E) == CUSTOMER

        payload = await r.recharge(RECHARGE_DI, 5_050, 2, session=session)
        remaining = r.meter.wallet.remaining_fen
        assert wallet_reply(payload) == (remaining, 2)
        assert 15_000 <= remaining <= 15_050
        assert await r.read(0x03330301) == Decimal("50.50")

        async def refused(amount: int, count: int, **kw: object) -> SecurityErrorWord:
            return await serr(r, RECHARGE_DI, amount, count, session=session, **kw)

        assert await refused(5_050, 2) == SecurityErrorWord.DUPLICATE_RECHARGE
        assert await refused(1_000, 4) == SecurityErrorWord.RECHARGE_COUNT_ERROR
        assert await refused(1_000, 3, customer="000000000099") == (
            SecurityErrorWord.CUSTOMER_MISMATCH
        )
        assert await refused(40_000, 3) == SecurityErrorWord.HOARDING_EXCEEDED
        assert await refused(1_000, 3, tamper=True) == SecurityErrorWord.ESAM_VERIFY_FAILED
        assert r.meter.wallet.remaining_fen == remaining  # none of them added money
        assert r.meter.wallet.purchase_count == 2

        # The session is still good for the next purchase; 070002FF ends it.
        payload = await r.recharge(RECHARGE_DI, 1_000, 3)
        assert wallet_reply(payload)[1] == 3
        await r.client.security(r.meter.address, 0x070002FF, b"")
        assert await refused(1_000, 4) == SecurityErrorWord.AUTH_FAILED
        assert r.meter.wallet.purchase_count == 3


async def test_recharge_needs_an_opened_account_and_a_session() -> None:
    async with local_rig() as r:
        assert await serr(r, RECHARGE_DI, 1_000, 1) == SecurityErrorWord.CUSTOMER_MISMATCH
        r.meter.auth.invalidate()
        with pytest.raises(AbnormalReplyError) as exc:
            await r.client.security(r.meter.address, RECHARGE_DI, bytes(22))
        assert isinstance(exc.value.reply, SecurityErrorReply)
        assert exc.value.reply.error == SecurityErrorWord.AUTH_FAILED


async def test_card_credit_is_applied_exactly_once(tmp_path: Path) -> None:
    async with local_rig() as r:
        meter = r.meter
        opened = await meter.insert_card(card(10_000, 1, kind=OPEN))
        assert opened.remaining_fen == 10_000 and opened.purchase_count == 1
        path = tmp_path / "card.json"
        write_card(path, card(5_000, 2))
        first = await meter.insert_card_file(path)
        assert first.remaining_fen == 15_000 and first.purchase_count == 2
        assert read_card(path).returned == first
        again = await meter.insert_card_file(path)  # the same card again: no credit
        assert again.remaining_fen == 15_000 and again.purchase_count == 2
        assert meter.wallet.cumulative_fen == 15_000
        assert len(meter.wallet.purchases) == 2
        assert again.illegal_inserts == 0 and again.meter_address == str(meter.address)


async def test_tampered_card_is_refused_and_counted(tmp_path: Path) -> None:
    async with local_rig() as r:
        meter = r.meter
        await meter.insert_card(card(10_000, 1, kind=OPEN))
        before = meter.wallet.to_state()
        path = tmp_path / "card.json"
        write_card(path, card(5_000, 2))
        data = json.loads(path.read_text())
        data["amount_fen"] = 500_000
        path.write_text(json.dumps(data))
        with pytest.raises(CardError, match="MAC"):
            await meter.insert_card_file(path)
        assert meter.wallet.to_state() == before
        assert meter.illegal_inserts == 1
        assert "returned" not in json.loads(path.read_text())
        back = await meter.insert_card(card(5_000, 2))
        assert back.illegal_inserts == 1 and back.remaining_fen == 15_000


async def test_genuine_cards_the_meter_refuses() -> None:
    async with local_rig() as r:
        meter = r.meter
        await meter.insert_card(card(10_000, 1, kind=OPEN))
        with pytest.raises(CardRefused) as gap:
            await meter.insert_card(card(1_000, 3))
        assert gap.value.serr == SecurityErrorWord.RECHARGE_COUNT_ERROR
        with pytest.raises(CardRefused) as foreign:
            await meter.insert_card(card(1_000, 2, customer="000000000099"))
        assert foreign.value.serr == SecurityErrorWord.CUSTOMER_MISMATCH
        assert meter.illegal_inserts == 1
        with pytest.raises(CardRefused) as hoard:
            await meter.insert_card(card(900_000, 2, hoarding_limit_fen=100_000))
        assert hoard.value.serr == SecurityErrorWord.HOARDING_EXCEEDED
        assert meter.wallet.limits.hoarding_limit_fen == 0  # rolled back with the purchase
        with pytest.raises(CardError, match="not known"):
            await meter.insert_card(card(1_000, 2, bogus=1))
        assert meter.wallet.remaining_fen == 10_000 and meter.wallet.purchase_count == 1


async def test_card_parameters_are_loaded() -> None:
    async with local_rig() as r:
        await r.meter.insert_card(card(10_000, 1, kind=OPEN, alarm1_fen=5_000, alarm2_fen=3_000))
        assert await r.read(0x04001001) == Decimal("50.00")
        assert await r.read(0x04001002) == Decimal("30.00")
        bad = card(0, 2, alarm2_fen=9_000)  # above alarm 1
        with pytest.raises(CardError, match="not valid"):
            await r.meter.insert_card(bad)
