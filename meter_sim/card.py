"""The customer's card (用户卡) as the local meter reads it: see :mod:`protocol.card`.

The card file codec (format and MAC) lives in :mod:`protocol.card`, so that the vending
office (``prepaid``) and the meter share it without importing each other; these names
are re-exported here for the meter simulator and its callers.
"""

from __future__ import annotations

from protocol.card import (
    CARD_FORMAT,
    Card,
    CardError,
    CardType,
    ReturnWrite,
    read_card,
    write_card,
)

__all__ = ["CARD_FORMAT", "Card", "CardError", "CardType", "ReturnWrite", "read_card", "write_card"]
