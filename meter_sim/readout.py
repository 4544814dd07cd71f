"""What a meter answers to 11H read data (读数据): the value bytes of each DI.

Values are encoded as on the wire (BCD, low byte first; PROTOCOL.md §2). Refusals
raise :class:`~meter_sim.errors.Refused`: ERR 02 (``NO_DATA``) for a DI the meter
does not have (or a freeze that was not taken), ERR 04 (``UNAUTHORIZED``) for the
write-only passwords.

Besides the single items and the ``FF00`` blocks of the DI registry, the energy DIs
take ``FF`` in DI0 for "current and the 12 settlement periods" (DL/T 645-2007):
``000xFFFF`` is 13 blocks of 20 bytes = 260 bytes, read with follow-up frames.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Final

from protocol import ErrorWord
from protocol.bcd import bcd_encode
from protocol.di import decode_value, encode_value

from .errors import Refused
from .freeze import FreezeStore
from .meter_clock import from_seconds
from .records import RECORDS_KEPT, EventLog, encode_energy, encode_operator
from .registers import COMBINED, SETTLEMENTS_KEPT

if TYPE_CHECKING:
    from .meter import Meter

__all__ = ["decimal_param", "value"]

_COMBINED_LIMIT: Final = 80_000_000
"""Combined energy is signed (top bit = sign): it rolls over below 800000.00 kWh."""
_TIME_YMDHM: Final = 0x05060001
_TIME_YMDHMS_FIELD: Final = 0x1D000101


def _no_data(di: int, why: str = "no such data item") -> Refused:
    return Refused(ErrorWord.NO_DATA, f"{di:08X}: {why}")


def _energy(values: list[int], kind: int) -> bytes:
    if kind == COMBINED:
        return b"".join(bcd_encode(v % _COMBINED_LIMIT, 4) for v in values)
    return b"".join(encode_energy(v) for v in values)


def decimal_param(meter: Meter, di: int) -> Decimal:
    """A numeric parameter of ``meter`` as a Decimal."""
    value = decode_value(di, meter.parameters.raw(di)).value
    return Decimal(value)


def value(meter: Meter, di: int) -> bytes:
    """The value bytes of ``di`` (see the module doc)."""
    di3 = di >> 24
    if di3 == 0x00:
        return _energy_value(meter, di)
    if di3 == 0x02:
        return _instant_value(meter, di)
    if di3 == 0x04:
        return _parameter_value(meter, di)
    if di3 == 0x05:
        return _freeze_value(meter, di)
    if di3 in (0x1D, 0x1E):
        return _record_value(meter.trip_log if di3 == 0x1D else meter.close_log, di)
    if di >> 8 == 0x033001:
        return _clear_record_value(meter.clear_log, di)
    raise _no_data(di)


def _energy_value(meter: Meter, di: int) -> bytes:
    kind, tariff, period = di >> 16 & 0xFF, di >> 8 & 0xFF, di & 0xFF
    if kind > 2 or not (tariff <= 4 or tariff == 0xFF):
        raise _no_data(di)
    registers = meter.registers
    periods = range(SETTLEMENTS_KEPT + 1) if period == 0xFF else (period,)
    out = b""
    for p in periods:
        block = registers.block(kind, p)
        if block is None:
            raise _no_data(di)
        out += _energy(block if tariff == 0xFF else [block[tariff]], kind)
    return out


def _instant_value(meter: Meter, di: int) -> bytes:
    if di == 0x02800022:
        return encode_value(di, meter.auth.remaining_minutes(meter.clock.shared_s()))
    if di == 0x02800023:
        return encode_value(di, 0)  # no infrared authentication
    if di == 0x02800007:
        return encode_value(di, Decimal("25.0"))
    if di == 0x02800008:
        return encode_value(di, Decimal("3.60"))
    now = meter.instant()
    current = Decimal(now.current_ma).scaleb(-3)
    power = Decimal(now.power_e4_kw).scaleb(-4)
    pf = Decimal(now.power_factor_e3).scaleb(-3)
    voltage = Decimal(now.voltage_dv).scaleb(-1)
    zero = Decimal(0)
    single: dict[int, Decimal] = {
        0x02010100: voltage,
        0x02010200: zero,
        0x02010300: zero,
        0x02020100: current,
        0x02020200: zero,
        0x02020300: zero,
        0x02030000: power,
        0x02030100: power,
        0x02030200: zero,
        0x02030300: zero,
        0x02060000: pf,
        0x02060100: pf,
        0x02060200: zero,
        0x02060300: zero,
        0x02800001: current,
        0x02800002: Decimal(now.frequency_chz).scaleb(-2),
    }
    if di in single:
        return encode_value(di, single[di])
    blocks: dict[int, tuple[Decimal, ...]] = {
        0x0201FF00: (voltage, zero, zero),
        0x0202FF00: (current, zero, zero),
        0x0203FF00: (power, power, zero, zero),
        0x0206FF00: (pf, pf, zero, zero),
    }
    if di in blocks:
        return encode_value(di, blocks[di])
    raise _no_data(di)


def _parameter_value(meter: Meter, di: int) -> bytes:
    if di in meter.parameters:
        return meter.parameters.raw(di)
    if di == 0x04000101:
        return encode_value(di, meter.clock.now().date())
    if di == 0x04000102:
        return encode_value(di, meter.clock.now().time().replace(microsecond=0))
    if di == 0x04000401:
        return encode_value(di, str(meter.address))
    if di == 0x04000402:
        return encode_value(di, meter.meter_number)
    if di == 0x0400040E:
        return encode_value(di, meter.customer_number)
    if di == 0x04000501:
        return int(meter.status_word1()).to_bytes(2, "little")
    if di == 0x04000503:
        return int(meter.status_word3()).to_bytes(2, "little")
    if 0x04000502 <= di <= 0x04000507:
        return bytes(2)
    if di == 0x040005FF:
        words = [int(meter.status_word1()), 0, int(meter.status_word3()), 0, 0, 0, 0]
        return b"".join(w.to_bytes(2, "little") for w in words)
    if 0x04000C01 <= di <= 0x04000C0A:
        raise Refused(ErrorWord.UNAUTHORIZED, "passwords cannot be read")
    raise _no_data(di)


def _freeze_value(meter: Meter, di: int) -> bytes:
    family, item, n = di >> 16, di >> 8 & 0xFF, di & 0xFF
    store: FreezeStore | None
    if family == 0x0506:
        store = meter.daily_freezes
        if n <= meter.config.faults.missing_freeze_days:
            raise _no_data(di, f"daily freeze {n} was not taken")
    elif family == 0x0503:
        store = meter.instant_freezes
    else:
        raise _no_data(di)
    freeze = store.get(n) if store is not None else None
    if freeze is None or item > 2:
        raise _no_data(di, "no such freeze")
    if item == 0:
        return encode_value(_TIME_YMDHM, from_seconds(freeze.minute * 60))
    return _energy(list(freeze.forward if item == 1 else freeze.reverse), 1)


def _record_value(log: EventLog, di: int) -> bytes:
    """1D/1E: xx000001 count, xx00FFnn record nn, xx00iinn field ii (1..4) of record nn."""
    if di & 0xFFFFFF == 0x000001:
        return bcd_encode(log.count, 3)
    field, n = di >> 8 & 0xFF, di & 0xFF
    if di >> 16 & 0xFF or not 1 <= n <= RECORDS_KEPT or not (field == 0xFF or 1 <= field <= 4):
        raise _no_data(di)
    parts = _record_parts(log, n)
    return b"".join(parts) if field == 0xFF else parts[field - 1]


def _clear_record_value(log: EventLog, di: int) -> bytes:
    """03300100 meter-clear count, 033001nn record nn."""
    n = di & 0xFF
    if n == 0:
        return bcd_encode(log.count, 3)
    if not 1 <= n <= RECORDS_KEPT:
        raise _no_data(di)
    return b"".join(_record_parts(log, n))


def _record_parts(log: EventLog, n: int) -> list[bytes]:
    """Time, operator, forward total, reverse total; zeros for a record not written yet."""
    record = log.get(n)
    if record is None:
        return [bytes(6), bytes(4), bytes(4), bytes(4)]
    return [
        encode_value(_TIME_YMDHMS_FIELD, from_seconds(record.time_s)),
        encode_operator(record.operator),
        encode_energy(record.forward),
        encode_energy(record.reverse),
    ]
