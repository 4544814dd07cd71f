"""The card file codec lives in ``protocol.card`` (shared by the vending office and the
meter); ``meter_sim.card`` re-exports the very same names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import meter_sim.card
import protocol.card
from protocol.card import Card, CardError, CardType, read_card, write_card
from protocol.security import TEST_MASTER_KEY, SimulatedEncryptionMachine, SimulatedEsam


def test_meter_sim_re_exports_the_protocol_codec() -> None:
    for name in meter_sim.card.__all__:
        assert getattr(meter_sim.card, name) is getattr(protocol.card, name)
    assert set(meter_sim.card.__all__) == set(protocol.card.__all__)


def test_a_card_signed_by_the_office_passes_any_esam_and_a_changed_one_does_not(
    tmp_path: Path,
) -> None:
    machine = SimulatedEncryptionMachine(TEST_MASTER_KEY)
    card = Card(CardType.OPEN, "003300000001", "S1", 12_345, 1).signed(machine)
    path = tmp_path / "card.json"
    write_card(path, card)
    assert json.loads(path.read_text())["format"] == "feikong-card/1"
    read_card(path).verify(SimulatedEsam(TEST_MASTER_KEY, "000000000007"))
    data = json.loads(path.read_text())
    data["purchase_count"] = 2
    path.write_text(json.dumps(data))
    with pytest.raises(CardError, match="MAC check failed"):
        read_card(path).verify(SimulatedEsam(TEST_MASTER_KEY, "000000000007"))


def test_a_customer_number_that_is_not_12_digits_is_refused() -> None:
    with pytest.raises(CardError, match="12 digits"):
        Card.from_json(
            {
                "format": "feikong-card/1",
                "type": "purchase",
                "customer_number": "3300000001",
                "serial": "S",
                "amount_fen": 1,
                "purchase_count": 1,
            }
        )
