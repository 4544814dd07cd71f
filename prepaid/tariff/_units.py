"""Integer units and the one rounding primitive (rules: see the package docstring).

- energy: ``int`` hundredths of a kWh ("ckwh"), the meter register resolution;
- price: ``int`` 1e-4 yuan per kWh ("e4"), as the meter's XXXX.XXXX price registers;
- amount: ``int`` 1e-6 yuan ("e6"), exactly ``price_e4 * energy_ckwh``;
- money: ``int`` fen (0.01 yuan), only at settlement points.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from fractions import Fraction

from ._errors import TariffError

CKWH_PER_KWH = 100
E4_PER_YUAN = 10_000
E6_PER_FEN = 10_000

#: Bounds that keep every intermediate of the vectorised engine inside int64.
MAX_ENERGY_CKWH = 10**11  # 1e9 kWh in one period or before it in the cycle
MAX_PRICE_E4 = 10**6  # 100 yuan/kWh, base price or |TOU delta|
MAX_FREE_CKWH = 10**6  # 10 000 kWh free allowance per cycle
MAX_TIERS = 10


def div_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded ROUND_HALF_UP (ties away from zero), exactly."""
    if denominator <= 0:
        raise ValueError("denominator must be positive")
    quotient, remainder = divmod(abs(numerator), denominator)
    if 2 * remainder >= denominator:
        quotient += 1
    return quotient if numerator >= 0 else -quotient


def fraction_half_up(value: Fraction) -> int:
    """An exact rational rounded ROUND_HALF_UP to an integer."""
    return div_half_up(value.numerator, value.denominator)


def e6_to_fen(amount_e6: int) -> int:
    """Settle an exact amount (1e-6 yuan) to fen, ROUND_HALF_UP."""
    return div_half_up(amount_e6, E6_PER_FEN)


def ckwh_to_kwh(energy_ckwh: int) -> Decimal:
    """``45000`` → ``Decimal('450.00')``."""
    return Decimal(energy_ckwh).scaleb(-2)


def e4_to_yuan(price_e4: int) -> Decimal:
    """``5200`` → ``Decimal('0.5200')``."""
    return Decimal(price_e4).scaleb(-4)


def e6_to_yuan(amount_e6: int) -> Decimal:
    """``104000000`` → ``Decimal('104.000000')`` (exact, never rounded)."""
    return Decimal(amount_e6).scaleb(-6)


def fen_to_yuan(fen: int) -> Decimal:
    """``25900`` → ``Decimal('259.00')``."""
    return Decimal(fen).scaleb(-2)


def to_decimal(value: object, *, key: str, expected: str) -> Decimal:
    """A finite ``Decimal`` from a Decimal, an int or a decimal string; never from a float."""
    if isinstance(value, (bool, float)):
        raise TariffError(
            f"expected {expected} as a decimal (string or TOML number), got {value!r} "
            "(a binary float is not exact)",
            key=key,
        )
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, str):
        try:
            result = Decimal(value.strip())
        except InvalidOperation:
            raise TariffError(f"expected {expected}, got {value!r}", key=key) from None
    else:
        raise TariffError(f"expected {expected}, got {value!r}", key=key)
    if not result.is_finite():
        raise TariffError(f"expected {expected}, got {value!r}", key=key)
    return result


def _scaled(value: object, scale: int, *, key: str, expected: str, places: int) -> int:
    number = to_decimal(value, key=key, expected=expected)
    scaled = number * scale
    if scaled != scaled.to_integral_value():
        raise TariffError(
            f"expected {expected} with at most {places} decimals, got {value!r}", key=key
        )
    return int(scaled)


def kwh_to_ckwh(value: object, *, key: str = "energy") -> int:
    """kWh (Decimal, int or decimal string) → hundredths of a kWh; at most 2 decimals, ≥ 0."""
    result = _scaled(value, CKWH_PER_KWH, key=key, expected="kWh", places=2)
    if result < 0:
        raise TariffError(f"expected kWh ≥ 0, got {value!r}", key=key)
    return result


def yuan_to_e4(value: object, *, key: str = "price", signed: bool = False) -> int:
    """yuan/kWh (Decimal, int or decimal string) → 1e-4 yuan/kWh; at most 4 decimals."""
    result = _scaled(value, E4_PER_YUAN, key=key, expected="yuan/kWh", places=4)
    if not signed and result < 0:
        raise TariffError(f"expected a price ≥ 0 yuan/kWh, got {value!r}", key=key)
    if abs(result) > MAX_PRICE_E4:
        limit = e4_to_yuan(MAX_PRICE_E4)
        raise TariffError(f"expected at most {limit} yuan/kWh, got {value!r}", key=key)
    return result
