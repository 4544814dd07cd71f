"""The customer's (simulated) CPU card (用户卡): a file the vending office writes.

The card file codec (format and MAC), shared by the vending office (``prepaid.vending``,
``feikong card``) and the local meter that takes the card (``meter_sim.local``): pure
code, no I/O beyond reading and writing the file.

A card file is JSON: the card type (open-account 开户卡, purchase 购电卡, replacement
补卡), the customer number, the card serial, the purchase amount and count, an
optional parameter block (limits), a MAC over all of that made with the card key
(dispersed from the lab master key by the customer number), and — after the card
was in a meter — the meter's return-write (返写): remaining and overdraft amounts,
purchase count, illegal-insert count, time. The meter checks the MAC before it
takes anything from the card: a tampered card is refused.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from .errors import SecurityError
from .security import SimulatedEncryptionMachine, SimulatedEsam

__all__ = [
    "CARD_FORMAT",
    "Card",
    "CardError",
    "CardType",
    "ReturnWrite",
    "read_card",
    "write_card",
]

CARD_FORMAT = "feikong-card/1"


class CardError(Exception):
    """A card file that cannot be used: unreadable, malformed or tampered with."""


class CardType(StrEnum):
    OPEN = "open"
    """开户卡 — opens the account on the meter and carries the first purchase."""
    PURCHASE = "purchase"
    """购电卡 — carries a purchase."""
    REPLACEMENT = "replacement"
    """补卡 — a new card for a lost one; carries the customer's next purchase."""


@dataclass(frozen=True, slots=True)
class ReturnWrite:
    """What the meter wrote back to the card (返写)."""

    meter_address: str
    remaining_fen: int
    overdraft_fen: int
    purchase_count: int
    illegal_inserts: int
    time: str


@dataclass(frozen=True, slots=True)
class Card:
    """The content of a card file."""

    type: CardType
    customer_number: str
    serial: str
    amount_fen: int
    purchase_count: int
    parameters: dict[str, int] = field(default_factory=dict)
    """Optional limits to load into the meter (e.g. ``alarm1_fen``)."""
    mac: str = ""
    returned: ReturnWrite | None = None

    def signed_bytes(self) -> bytes:
        """The bytes the MAC covers (everything the vending office wrote)."""
        body = {
            "type": str(self.type),
            "customer_number": self.customer_number,
            "serial": self.serial,
            "amount_fen": self.amount_fen,
            "purchase_count": self.purchase_count,
            "parameters": dict(sorted(self.parameters.items())),
        }
        return json.dumps(body, sort_keys=True, separators=(",", ":")).encode()

    def signed(self, machine: SimulatedEncryptionMachine) -> Card:
        """The card with its MAC made by the vending office's encryption machine."""
        return replace(self, mac=machine.card_mac(self.customer_number, self.signed_bytes()).hex())

    def verify(self, esam: SimulatedEsam) -> None:
        """Raise :class:`CardError` unless the MAC matches (a tampered or foreign card)."""
        try:
            mac = bytes.fromhex(self.mac)
            esam.verify_card_mac(self.customer_number, self.signed_bytes(), mac)
        except (ValueError, SecurityError) as exc:
            raise CardError(
                f"card {self.serial} of customer {self.customer_number} is not "
                f"valid (MAC check failed: {exc}); ask the vending office for a new "
                "card"
            ) from None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "format": CARD_FORMAT,
            "type": str(self.type),
            "customer_number": self.customer_number,
            "serial": self.serial,
            "amount_fen": self.amount_fen,
            "purchase_count": self.purchase_count,
            "parameters": self.parameters,
            "mac": self.mac,
        }
        if self.returned is not None:
            r = self.returned
            data["returned"] = {
                "meter_address": r.meter_address,
                "remaining_fen": r.remaining_fen,
                "overdraft_fen": r.overdraft_fen,
                "purchase_count": r.purchase_count,
                "illegal_inserts": r.illegal_inserts,
                "time": r.time,
            }
        return data

    @classmethod
    def from_json(cls, data: Any, where: str = "card") -> Card:
        if not isinstance(data, dict) or data.get("format") != CARD_FORMAT:
            raise CardError(f"{where} is not a feikong card file (format {CARD_FORMAT})")
        try:
            customer = str(data["customer_number"])
            if len(customer) != 12 or not customer.isdigit():
                raise ValueError(f"customer number {customer!r} must be 12 digits")
            amount, count = int(data["amount_fen"]), int(data["purchase_count"])
            if amount < 0 or count < 0:
                raise ValueError("amount and purchase count must not be negative")
            params = {str(k): int(v) for k, v in dict(data.get("parameters") or {}).items()}
            returned = None
            if data.get("returned"):
                r = data["returned"]
                returned = ReturnWrite(
                    str(r["meter_address"]),
                    int(r["remaining_fen"]),
                    int(r["overdraft_fen"]),
                    int(r["purchase_count"]),
                    int(r["illegal_inserts"]),
                    str(r["time"]),
                )
            return cls(
                CardType(data["type"]),
                customer,
                str(data["serial"]),
                amount,
                count,
                params,
                str(data.get("mac", "")),
                returned,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise CardError(f"{where}: {exc}") from None


def write_card(path: str | os.PathLike[str], card: Card) -> None:
    """Write a card file (atomically: a half-written card never exists)."""
    target = Path(path)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(json.dumps(card.to_json(), indent=2, ensure_ascii=False) + "\n")
    os.replace(tmp, target)


def read_card(path: str | os.PathLike[str]) -> Card:
    """Read a card file; :class:`CardError` naming the file if it cannot be used."""
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise CardError(f"cannot read card file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CardError(f"card file {path} is not valid JSON: {exc}") from None
    return Card.from_json(data, str(path))
