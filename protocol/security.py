"""Security primitives of fee-control meters: identity auth, 98-level 1CH and recharge (安全认证).

.. warning::
   **Simulation crypto, not SGCC-compatible.** Real SGCC meters use SM1 inside an ESAM
   (嵌入式安全控制模块), and head-ends call an encryption machine (加密机); SM1 is unpublished
   and hardware-only. SM4 (GB/T 32907, from ``cryptography``) stands in so frame sizes match
   the real ones: 8-byte ciphertext1/random1/factor, 4-byte random2, 8-byte ESAM serial,
   16-byte cipher + 4-byte MAC. Nothing here authenticates against a real meter.

The module is sans-IO: it builds and checks byte blocks and never touches a port. The two
roles are interfaces, so a real encryption machine or ESAM could plug in:

- :class:`EncryptionMachine` (head-end side), simulated by :class:`SimulatedEncryptionMachine`;
- :class:`Esam` (meter side), simulated by :class:`SimulatedEsam`.

Definitions (every field high byte first, as the ESAM sees it; the message layer decides the
wire order and adds the 33H offset)::

    mac4(K, data)  = first 4 bytes of SM4-CBC-MAC(K, data), zero IV,
                     ISO/IEC 9797-1 padding method 2 (80H, then 00H to a 16-byte multiple)
    factor         = 00 00 || BCD(12-digit meter number)                (分散因子, 8 bytes)
    K_meter        = SM4-ECB(master, factor || NOT factor)               (diversified key)
    cipher1        = SM4-ECB(K_meter, random1 || 00*8)[:8]
    K_session      = SM4-ECB(K_meter, random1 || random2 || esam_serial[:4])
    control block  = C || mac4(K_session, random2 || esam_serial || C)  (20 bytes)
                     C = SM4-ECB(K_session, pad(N1 N2 YY MM DD hh mm ss)), time in BCD
    recharge block = amount(4) || count(4) || MAC1(4) || customer(6) || MAC2(4)  (22 bytes)
                     MAC1 = mac4(K_session, random2 || amount || count)
                     MAC2 = mac4(K_session, random2 || amount || count || MAC1 || customer)
    card key       = SM4-ECB(master, cf || NOT cf), cf = FF FF || BCD(customer number)
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Final, Protocol, runtime_checkable

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import SecurityError

__all__ = [
    "CONTROL_BLOCK_SIZE",
    "RECHARGE_BLOCK_SIZE",
    "TEST_MASTER_KEY",
    "AuthenticationFailed",
    "EncryptionMachine",
    "Esam",
    "IdentityChallenge",
    "MacError",
    "NoSessionError",
    "ReplayError",
    "Session",
    "SimulatedEncryptionMachine",
    "SimulatedEsam",
    "SuspendedError",
    "card_key",
    "cbc_mac",
    "check_sm4_support",
    "customer_factor",
    "diversify",
    "format_key_file",
    "load_master_key",
    "mac4",
    "meter_factor",
    "sm4_ecb_decrypt",
    "sm4_ecb_encrypt",
]

#: The well-known lab key used when no key file is given. Never use it outside a lab.
TEST_MASTER_KEY: Final = b"FEIKONG-TEST-KEY"

#: N1..N20 of a 98-level 1CH frame: 16 bytes of ciphertext + 4 bytes of MAC.
CONTROL_BLOCK_SIZE: Final = 20
#: The 070101FF/070102FF payload after the operator code: 4+4+4+6+4 bytes.
RECHARGE_BLOCK_SIZE: Final = 22

_BLOCK: Final = 16
_ZERO_IV: Final = bytes(_BLOCK)
# GB/T 32907-2016 appendix A, example 1: key = plaintext.
_GBT_KEY: Final = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
_GBT_CIPHER: Final = bytes.fromhex("681EDF34D206965E86B3E94F536E4246")
_DIGITS: Final = frozenset("0123456789")
_RESEND: Final = (
    "does not verify under the session key: the block was altered or made for another "
    "session; authenticate again and resend"
)


# --------------------------------------------------------------------------- errors


class AuthenticationFailed(SecurityError):
    """Identity authentication refused: wrong dispersion factor or ciphertext1.

    A meter answers SERR bit3 (identity auth failed).
    """


class MacError(SecurityError):
    """A MAC did not verify: wrong key, tampered data, or a block from an older session.

    A meter answers SERR bit2 (ESAM verification failed) or control-error bit1.
    """


class ReplayError(SecurityError):
    """A control block that was already accepted in the current session was sent again.

    A meter treats it like a MAC error (SERR bit2 / control-error bit1).
    """


class SuspendedError(SecurityError):
    """The ESAM is suspended (挂起) after too many MAC errors.

    A meter answers SERR bit8 or control-error bit0.
    """


class NoSessionError(SecurityError):
    """No identity authentication is in force.

    A meter answers SERR bit3 or control-error bit3 (identity auth invalid).
    """


# --------------------------------------------------------------------------- SM4 primitives

_sm4_checked = False


def check_sm4_support() -> None:
    """Fail with :class:`SecurityError` if the installed ``cryptography`` cannot do SM4.

    The first call encrypts the GB/T 32907 example; later calls return at once.
    """
    global _sm4_checked
    if _sm4_checked:
        return
    try:
        encryptor = Cipher(algorithms.SM4(_GBT_KEY), modes.ECB()).encryptor()
        result = encryptor.update(_GBT_KEY) + encryptor.finalize()
    except (UnsupportedAlgorithm, AttributeError, ValueError) as exc:
        raise SecurityError(
            f"this cryptography/OpenSSL build ({_crypto_versions()}) lacks SM4 ({exc}); "
            "install the cryptography wheel from PyPI (its bundled OpenSSL has SM4), "
            "e.g. `pip install --force-reinstall --only-binary=:all: 'cryptography>=48'`"
        ) from exc
    if result != _GBT_CIPHER:
        raise SecurityError(
            f"SM4 in this cryptography/OpenSSL build ({_crypto_versions()}) fails the "
            f"GB/T 32907 test vector (got {result.hex().upper()}); "
            "reinstall cryptography from the PyPI wheel"
        )
    _sm4_checked = True


def _crypto_versions() -> str:
    import cryptography

    try:
        from cryptography.hazmat.backends.openssl.backend import backend

        openssl = backend.openssl_version_text()
    except Exception:  # pragma: no cover - only on broken installs
        openssl = "OpenSSL version unknown"
    return f"cryptography {cryptography.__version__}, {openssl}"


def _check_key(key: bytes, what: str = "SM4 key") -> None:
    if len(key) != _BLOCK:
        raise SecurityError(f"{what} must be 16 bytes, got {len(key)}")


def _check_blocks(data: bytes, what: str) -> None:
    if len(data) % _BLOCK:
        raise SecurityError(
            f"{what} must be a multiple of 16 bytes, got {len(data)}; pad it first (see cbc_mac)"
        )


def sm4_ecb_encrypt(key: bytes, data: bytes) -> bytes:
    """SM4-ECB of ``data`` (a multiple of 16 bytes, no padding added) under a 16-byte ``key``."""
    check_sm4_support()
    _check_key(key)
    _check_blocks(data, "SM4-ECB plaintext")
    encryptor = Cipher(algorithms.SM4(key), modes.ECB()).encryptor()
    return encryptor.update(data) + encryptor.finalize()


def sm4_ecb_decrypt(key: bytes, data: bytes) -> bytes:
    """The inverse of :func:`sm4_ecb_encrypt`."""
    check_sm4_support()
    _check_key(key)
    _check_blocks(data, "SM4-ECB ciphertext")
    decryptor = Cipher(algorithms.SM4(key), modes.ECB()).decryptor()
    return decryptor.update(data) + decryptor.finalize()


def _pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 80H, then 00H up to a multiple of 16 (always adds)."""
    padded = data + b"\x80"
    return padded + bytes(-len(padded) % _BLOCK)


def _unpad(data: bytes) -> bytes | None:
    """The inverse of :func:`_pad`, or None if the padding is malformed."""
    stripped = data.rstrip(b"\x00")
    if not stripped.endswith(b"\x80") or len(data) - len(stripped) >= _BLOCK:
        return None
    return stripped[:-1]


def cbc_mac(key: bytes, data: bytes, iv: bytes = _ZERO_IV) -> bytes:
    """SM4-CBC-MAC (16 bytes) of ``data`` with ISO/IEC 9797-1 padding method 2."""
    check_sm4_support()
    _check_key(key)
    if len(iv) != _BLOCK:
        raise SecurityError(f"CBC-MAC IV must be 16 bytes, got {len(iv)}")
    encryptor = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    return (encryptor.update(_pad(data)) + encryptor.finalize())[-_BLOCK:]


def mac4(key: bytes, data: bytes) -> bytes:
    """The 4-byte MAC of the frames: the first 4 bytes of :func:`cbc_mac`."""
    return cbc_mac(key, data)[:4]


# --------------------------------------------------------------------------- key derivation


def _bcd12(number: str, what: str) -> bytes:
    if len(number) != 12 or not _DIGITS.issuperset(number):
        raise SecurityError(f"{what} must be 12 decimal digits, got {number!r}")
    return bytes.fromhex(number)


def meter_factor(meter_number: str) -> bytes:
    """The dispersion factor (分散因子) of a meter: ``00 00`` + 6 BCD bytes, high first."""
    return b"\x00\x00" + _bcd12(meter_number, "meter number (表号)")


def customer_factor(customer_number: str) -> bytes:
    """The card-key factor of a customer: ``FF FF`` + 6 BCD bytes, high first.

    The ``FF FF`` prefix is not BCD, so it never equals a :func:`meter_factor`.
    """
    return b"\xff\xff" + _bcd12(customer_number, "customer number (客户编号)")


def diversify(master_key: bytes, factor: bytes) -> bytes:
    """The key dispersed by an 8-byte factor: SM4-ECB(master, factor || NOT factor)."""
    _check_key(master_key, "master key")
    if len(factor) != 8:
        raise SecurityError(f"dispersion factor must be 8 bytes, got {len(factor)}")
    inverted = bytes(b ^ 0xFF for b in factor)
    return sm4_ecb_encrypt(master_key, factor + inverted)


def card_key(master_key: bytes, customer_number: str) -> bytes:
    """The key of a customer's (simulated) CPU card, dispersed by :func:`customer_factor`."""
    return diversify(master_key, customer_factor(customer_number))


# --------------------------------------------------------------------------- key files


def load_master_key(path: str | os.PathLike[str] | None) -> tuple[bytes, bool]:
    """Read a lab master-key file; returns ``(key, is_test_key)``.

    The file holds 32 hex digits; whitespace and ``#`` comments are ignored. With ``path``
    None the result is :data:`TEST_MASTER_KEY` and True, so callers can warn loudly.
    """
    if path is None:
        return TEST_MASTER_KEY, True
    name = os.fspath(path)
    try:
        text = Path(name).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SecurityError(
            f"master key file {name!r} does not exist; create it with 32 hex digits "
            "(see format_key_file) or give no key file to use the lab test key"
        ) from None
    except UnicodeDecodeError:
        raise SecurityError(
            f"master key file {name!r} is not a text file; it must hold 32 hex digits"
        ) from None
    except OSError as exc:
        raise SecurityError(
            f"master key file {name!r} cannot be read ({exc.strerror}); check its permissions"
        ) from None
    digits = "".join("".join(line.split("#", 1)[0].split()) for line in text.splitlines())
    if len(digits) != 2 * _BLOCK:
        raise SecurityError(
            f"master key file {name!r} must hold 32 hex digits (16 bytes) outside comments, "
            f"found {len(digits)} characters"
        )
    try:
        key = bytes.fromhex(digits)
    except ValueError:
        raise SecurityError(
            f"master key file {name!r} holds characters that are not hex digits; "
            "write the key as 32 characters 0-9/A-F"
        ) from None
    return key, key == TEST_MASTER_KEY


def format_key_file(key: bytes) -> str:
    """The text of a key file that :func:`load_master_key` reads back as ``key``."""
    _check_key(key, "master key")
    return (
        "# feikong lab master key: simulation crypto, not SGCC-compatible.\n"
        "# 16 bytes as 32 hex digits. Keep this file private (chmod 600).\n"
        f"{key.hex().upper()}\n"
    )


# --------------------------------------------------------------------------- values


def _check_len(value: bytes, size: int, what: str) -> None:
    if len(value) != size:
        raise SecurityError(f"{what} must be {size} bytes, got {len(value)}")


@dataclass(frozen=True, slots=True)
class IdentityChallenge:
    """What the head-end sends in an identity-authentication request (03H, DI 070000FF)."""

    random1: bytes
    cipher1: bytes
    factor: bytes

    def __post_init__(self) -> None:
        _check_len(self.random1, 8, "random1")
        _check_len(self.cipher1, 8, "ciphertext1")
        _check_len(self.factor, 8, "dispersion factor")

    @property
    def meter_number(self) -> str:
        """The 12-digit meter number inside :attr:`factor`."""
        return self.factor[2:].hex()


@dataclass(frozen=True, slots=True)
class Session:
    """An identity-authenticated session with one meter, as the head-end holds it.

    ``key`` is the session key in the simulation; a real encryption machine keeps keys
    inside and would put a handle here instead.
    """

    meter_number: str
    random1: bytes
    random2: bytes
    esam_serial: bytes
    key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        _bcd12(self.meter_number, "meter number (表号)")
        _check_len(self.random1, 8, "random1")
        _check_len(self.random2, 4, "random2")
        _check_len(self.esam_serial, 8, "ESAM serial number")
        _check_key(self.key, "session key")


def _session_key(meter_key: bytes, random1: bytes, random2: bytes, esam_serial: bytes) -> bytes:
    return sm4_ecb_encrypt(meter_key, random1 + random2 + esam_serial[:4])


def _cipher1(meter_key: bytes, random1: bytes) -> bytes:
    return sm4_ecb_encrypt(meter_key, random1 + bytes(8))[:8]


def _encode_time(when: datetime) -> bytes:
    if not 2000 <= when.year <= 2099:
        raise SecurityError(f"expiry year {when.year} cannot be sent: the block carries 2000..2099")
    return bytes.fromhex(
        f"{when.year - 2000:02d}{when.month:02d}{when.day:02d}"
        f"{when.hour:02d}{when.minute:02d}{when.second:02d}"
    )


def _decode_time(raw: bytes) -> datetime:
    text = raw.hex()
    if not _DIGITS.issuperset(text):
        raise SecurityError(f"expiry bytes {raw.hex(' ').upper()} are not BCD")
    yy, mo, dd, hh, mi, ss = (int(text[i : i + 2]) for i in range(0, 12, 2))
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss)
    except ValueError as exc:
        raise SecurityError(
            f"expiry bytes {raw.hex(' ').upper()} are not a valid time: {exc}"
        ) from None


def _recharge_macs(
    key: bytes, random2: bytes, wallet: bytes, customer: bytes
) -> tuple[bytes, bytes]:
    mac1 = mac4(key, random2 + wallet)
    mac2 = mac4(key, random2 + wallet + mac1 + customer)
    return mac1, mac2


# --------------------------------------------------------------------------- interfaces


@runtime_checkable
class EncryptionMachine(Protocol):
    """The head-end's encryption machine (加密机): makes challenges, commands and MACs."""

    def start_identity_auth(self, meter_number: str) -> IdentityChallenge:
        """A fresh random1 and its ciphertext1 for the meter's dispersion factor."""
        ...

    def finish_identity_auth(
        self, challenge: IdentityChallenge, random2: bytes, esam_serial: bytes
    ) -> Session:
        """The session that the meter's reply (random2, ESAM serial) establishes."""
        ...

    def control_block(
        self, session: Session, command: int, expiry: datetime, *, n2: int = 0
    ) -> bytes:
        """N1..N20 of a 98-level 1CH frame: 16 bytes of ciphertext + 4 bytes of MAC."""
        ...

    def recharge_block(
        self, session: Session, amount_fen: int, purchase_count: int, customer_number: str
    ) -> bytes:
        """The 22-byte 070101FF/070102FF payload that follows the operator code."""
        ...

    def card_mac(self, customer_number: str, data: bytes) -> bytes:
        """The 4-byte MAC of a file on the customer's (simulated) CPU card."""
        ...


@runtime_checkable
class Esam(Protocol):
    """The meter's security module (ESAM): checks what the encryption machine made."""

    @property
    def meter_number(self) -> str: ...

    @property
    def esam_serial(self) -> bytes: ...

    @property
    def has_session(self) -> bool: ...

    @property
    def mac_errors(self) -> int: ...

    @property
    def suspended(self) -> bool: ...

    def identity_auth(self, cipher1: bytes, random1: bytes, factor: bytes) -> tuple[bytes, bytes]:
        """Check the challenge; on success return ``(random2, esam_serial)``."""
        ...

    def open_control_block(self, block: bytes) -> tuple[int, int, datetime]:
        """Verify and decrypt a 20-byte control block; return ``(N1, N2, expiry)``."""
        ...

    def open_recharge_block(self, payload: bytes) -> tuple[int, int, str]:
        """Verify a 22-byte recharge block; return ``(amount_fen, count, customer_number)``."""
        ...

    def verify_card_mac(self, customer_number: str, data: bytes, mac: bytes) -> None:
        """Check the MAC of a card file; :class:`MacError` if it is wrong."""
        ...

    def invalidate_session(self) -> None: ...

    def reset_mac_errors(self) -> None: ...

    def session_state(self) -> dict[str, str] | None: ...

    def restore_session(self, state: Mapping[str, str] | None) -> None: ...


# --------------------------------------------------------------------------- simulations


class SimulatedEncryptionMachine:
    """An :class:`EncryptionMachine` in software, holding the master key (simulation crypto)."""

    def __init__(self, master_key: bytes) -> None:
        _check_key(master_key, "master key")
        check_sm4_support()
        self._master = master_key

    def start_identity_auth(self, meter_number: str) -> IdentityChallenge:
        factor = meter_factor(meter_number)
        random1 = os.urandom(8)
        cipher1 = _cipher1(diversify(self._master, factor), random1)
        return IdentityChallenge(random1=random1, cipher1=cipher1, factor=factor)

    def finish_identity_auth(
        self, challenge: IdentityChallenge, random2: bytes, esam_serial: bytes
    ) -> Session:
        _check_len(random2, 4, "random2")
        _check_len(esam_serial, 8, "ESAM serial number")
        meter_key = diversify(self._master, challenge.factor)
        return Session(
            meter_number=challenge.meter_number,
            random1=challenge.random1,
            random2=random2,
            esam_serial=esam_serial,
            key=_session_key(meter_key, challenge.random1, random2, esam_serial),
        )

    def control_block(
        self, session: Session, command: int, expiry: datetime, *, n2: int = 0
    ) -> bytes:
        if not (0 <= command <= 0xFF and 0 <= n2 <= 0xFF):
            raise SecurityError(f"N1 and N2 are single bytes, got N1={command}, N2={n2}")
        plain = bytes((command, n2)) + _encode_time(expiry)
        cipher = sm4_ecb_encrypt(session.key, _pad(plain))
        return cipher + mac4(session.key, session.random2 + session.esam_serial + cipher)

    def recharge_block(
        self, session: Session, amount_fen: int, purchase_count: int, customer_number: str
    ) -> bytes:
        if not 0 <= amount_fen <= 0xFFFFFFFF:
            raise SecurityError(f"amount must fit 4 bytes (0..4294967295 fen), got {amount_fen}")
        if not 0 <= purchase_count <= 0xFFFFFFFF:
            raise SecurityError(f"purchase count must fit 4 bytes, got {purchase_count}")
        wallet = amount_fen.to_bytes(4, "big") + purchase_count.to_bytes(4, "big")
        customer = _bcd12(customer_number, "customer number (客户编号)")
        mac1, mac2 = _recharge_macs(session.key, session.random2, wallet, customer)
        return wallet + mac1 + customer + mac2

    def card_mac(self, customer_number: str, data: bytes) -> bytes:
        return mac4(card_key(self._master, customer_number), data)


@dataclass(slots=True)
class _EsamSession:
    random1: bytes
    random2: bytes
    key: bytes
    accepted: set[bytes]


class SimulatedEsam:
    """An :class:`Esam` in software for one meter (simulation crypto).

    Every MAC or authentication failure counts; at ``max_mac_errors`` the ESAM is suspended
    (挂起): the session ends and every security operation raises :class:`SuspendedError`
    until :meth:`reset_mac_errors`. The identity-auth validity period (default 5 min) and
    command expiry are the meter's business: it calls :meth:`invalidate_session` when the
    period ends and compares the returned expiry with its clock.
    """

    def __init__(
        self,
        master_key: bytes,
        meter_number: str,
        esam_serial: bytes | None = None,
        *,
        max_mac_errors: int = 5,
        mac_errors: int = 0,
    ) -> None:
        _check_key(master_key, "master key")
        if max_mac_errors < 1:
            raise SecurityError(f"max_mac_errors must be at least 1, got {max_mac_errors}")
        if mac_errors < 0:
            raise SecurityError(f"mac_errors cannot be negative, got {mac_errors}")
        check_sm4_support()
        self._master = master_key
        self._factor = meter_factor(meter_number)
        self._meter_key = diversify(master_key, self._factor)
        self._meter_number = meter_number
        if esam_serial is None:
            # Deterministic, so a meter restored from a state file keeps its serial.
            esam_serial = b"\xe5\xa0" + self._factor[2:]
        _check_len(esam_serial, 8, "ESAM serial number")
        self._serial = esam_serial
        self._max = max_mac_errors
        self._errors = mac_errors
        self._session: _EsamSession | None = None

    @property
    def meter_number(self) -> str:
        return self._meter_number

    @property
    def esam_serial(self) -> bytes:
        return self._serial

    @property
    def factor(self) -> bytes:
        """This meter's dispersion factor."""
        return self._factor

    @property
    def has_session(self) -> bool:
        return self._session is not None

    @property
    def mac_errors(self) -> int:
        return self._errors

    @property
    def max_mac_errors(self) -> int:
        return self._max

    @property
    def suspended(self) -> bool:
        return self._errors >= self._max

    def invalidate_session(self) -> None:
        """End the identity-authenticated session (timeout, 070002FF, power loss)."""
        self._session = None

    def reset_mac_errors(self) -> None:
        """Clear the MAC-error counter, lifting a suspension (e.g. at midnight or by key update)."""
        self._errors = 0

    def _check_not_suspended(self) -> None:
        if self.suspended:
            raise SuspendedError(
                f"ESAM of meter {self._meter_number} is suspended after {self._errors} MAC "
                "errors; reset its MAC-error counter before any security operation"
            )

    def _fail(self, exc_type: type[SecurityError], message: str) -> SecurityError:
        self._errors += 1
        if self.suspended:
            self._session = None
            message += f"; the ESAM is now suspended ({self._errors} MAC errors)"
        else:
            message += f" ({self._errors} of {self._max} MAC errors before suspension)"
        return exc_type(message)

    def _require_session(self) -> _EsamSession:
        self._check_not_suspended()
        if self._session is None:
            raise NoSessionError(
                f"identity authentication required: meter {self._meter_number} has no valid "
                "session; authenticate (03H, DI 070000FF) first"
            )
        return self._session

    def identity_auth(self, cipher1: bytes, random1: bytes, factor: bytes) -> tuple[bytes, bytes]:
        """Check a challenge; a new attempt always ends the previous session."""
        self._check_not_suspended()
        self._session = None
        _check_len(cipher1, 8, "ciphertext1")
        _check_len(random1, 8, "random1")
        _check_len(factor, 8, "dispersion factor")
        if factor != self._factor:
            raise self._fail(
                AuthenticationFailed,
                f"dispersion factor {factor.hex().upper()} is not this meter's "
                f"({self._factor.hex().upper()}); check the meter number",
            )
        if not hmac.compare_digest(cipher1, _cipher1(self._meter_key, random1)):
            raise self._fail(
                AuthenticationFailed,
                "ciphertext1 does not match random1 under this meter's key; "
                "the head-end and the meter use different master keys",
            )
        random2 = os.urandom(4)
        key = _session_key(self._meter_key, random1, random2, self._serial)
        self._session = _EsamSession(random1, random2, key, set())
        return random2, self._serial

    def open_control_block(self, block: bytes) -> tuple[int, int, datetime]:
        session = self._require_session()
        _check_len(block, CONTROL_BLOCK_SIZE, "control block N1..N20")
        cipher, mac = block[:16], block[16:]
        expected = mac4(session.key, session.random2 + self._serial + cipher)
        if not hmac.compare_digest(mac, expected):
            raise self._fail(
                MacError,
                f"control block MAC {_RESEND}",
            )
        if block in session.accepted:
            raise ReplayError(
                "control block replay: this block was already accepted in the current session; "
                "make a new block (a new expiry) for a repeated command"
            )
        plain = _unpad(sm4_ecb_decrypt(session.key, cipher))
        if plain is None or len(plain) != 8:
            raise SecurityError(
                "control block decrypts to malformed plaintext (bad padding); "
                "the encryption machine must send N1 N2 + 6-byte time, padded"
            )
        expiry = _decode_time(plain[2:])
        session.accepted.add(block)
        return plain[0], plain[1], expiry

    def open_recharge_block(self, payload: bytes) -> tuple[int, int, str]:
        """Verify both MACs; duplicate recharges are caught by the meter's purchase count."""
        session = self._require_session()
        _check_len(payload, RECHARGE_BLOCK_SIZE, "recharge block")
        wallet, mac1, customer, mac2 = payload[:8], payload[8:12], payload[12:18], payload[18:]
        exp1, exp2 = _recharge_macs(session.key, session.random2, wallet, customer)
        if not hmac.compare_digest(mac1, exp1):
            raise self._fail(MacError, f"recharge MAC1 (amount and purchase count) {_RESEND}")
        if not hmac.compare_digest(mac2, exp2):
            raise self._fail(MacError, f"recharge MAC2 (customer number) {_RESEND}")
        text = customer.hex()
        if not _DIGITS.issuperset(text):
            raise SecurityError(f"customer number bytes {customer.hex(' ').upper()} are not BCD")
        return int.from_bytes(wallet[:4], "big"), int.from_bytes(wallet[4:], "big"), text

    def verify_card_mac(self, customer_number: str, data: bytes, mac: bytes) -> None:
        """Check a card-file MAC. Card errors do not count towards suspension."""
        self._check_not_suspended()
        _check_len(mac, 4, "card MAC")
        if not hmac.compare_digest(mac, mac4(card_key(self._master, customer_number), data)):
            raise MacError(
                f"card MAC does not verify for customer {customer_number}; "
                "the card was altered or issued under another master key"
            )

    def session_state(self) -> dict[str, str] | None:
        """The session as hex strings for a meter state file (no key material), or None."""
        if self._session is None:
            return None
        return {
            "random1": self._session.random1.hex(),
            "random2": self._session.random2.hex(),
            "esam_serial": self._serial.hex(),
            "accepted": ",".join(sorted(b.hex() for b in self._session.accepted)),
        }

    def restore_session(self, state: Mapping[str, str] | None) -> None:
        """Restore what :meth:`session_state` exported; None ends the session."""
        if state is None:
            self._session = None
            return
        try:
            random1 = bytes.fromhex(state["random1"])
            random2 = bytes.fromhex(state["random2"])
            serial = bytes.fromhex(state["esam_serial"])
            listed = state.get("accepted", "")
            accepted = {bytes.fromhex(h) for h in listed.split(",") if h}
        except (KeyError, ValueError, AttributeError) as exc:
            raise SecurityError(
                f"session state is malformed ({exc!r}); it needs hex strings random1, random2, "
                "esam_serial and accepted, as session_state() writes them"
            ) from None
        _check_len(random1, 8, "session state random1")
        _check_len(random2, 4, "session state random2")
        if serial != self._serial:
            raise SecurityError(
                f"session state belongs to ESAM {serial.hex().upper()}, not to this meter's "
                f"ESAM {self._serial.hex().upper()}; discard the session and authenticate again"
            )
        if any(len(b) != CONTROL_BLOCK_SIZE for b in accepted):
            raise SecurityError("session state lists accepted blocks that are not 20 bytes")
        key = _session_key(self._meter_key, random1, random2, self._serial)
        self._session = _EsamSession(random1, random2, key, accepted)
