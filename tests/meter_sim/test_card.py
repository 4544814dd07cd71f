"""Card files: written by the vending office, checked by the meter's ESAM."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from meter_sim.card import Card, CardError, CardType, read_card, write_card
from protocol.security import TEST_MASTER_KEY, SimulatedEncryptionMachine, SimulatedEsam

MACHINE = SimulatedEncryptionMachine(TEST_MASTER_KEY)
ESAM = SimulatedEsam(TEST_MASTER_KEY, "000000000101")


def card() -> Card:
    return Card(CardType.PURCHASE, "000000000001", "C0001", 5000, 2).signed(MACHINE)


def test_round_trip_through_a_file(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    write_card(path, card())
    back = read_card(path)
    assert back == card()
    back.verify(ESAM)  # any meter's ESAM can check it: the card key is the customer's


def test_tampered_amount_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    write_card(path, card())
    data = json.loads(path.read_text())
    data["amount_fen"] = 500000
    path.write_text(json.dumps(data))
    with pytest.raises(CardError, match="MAC"):
        read_card(path).verify(ESAM)


def test_card_of_another_lab_key_is_refused() -> None:
    foreign = replace(card(), mac="").signed(SimulatedEncryptionMachine(bytes(16)))
    with pytest.raises(CardError):
        foreign.verify(ESAM)


@pytest.mark.parametrize(
    "content",
    ["", "{", "[]", '{"format": "other"}', '{"format": "feikong-card/1", "type": "purchase"}'],
)
def test_bad_files(tmp_path: Path, content: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(CardError, match=str(path.name)):
        read_card(path)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CardError, match="cannot read"):
        read_card(tmp_path / "none.json")
