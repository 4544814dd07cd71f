"""Tests of protocol.security (simulation crypto, not SGCC-compatible).

Golden values marked "openssl" were computed with the system ``openssl enc -sm4-ecb`` /
``-sm4-cbc`` command (OpenSSL 3.0), independently of the ``cryptography`` wheel and of the
code under test.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.ciphers import algorithms

from protocol import security
from protocol.errors import SecurityError
from protocol.security import (
    CONTROL_BLOCK_SIZE,
    RECHARGE_BLOCK_SIZE,
    TEST_MASTER_KEY,
    AuthenticationFailed,
    EncryptionMachine,
    Esam,
    IdentityChallenge,
    MacError,
    NoSessionError,
    ReplayError,
    Session,
    SimulatedEncryptionMachine,
    SimulatedEsam,
    SuspendedError,
    card_key,
    cbc_mac,
    check_sm4_support,
    customer_factor,
    diversify,
    format_key_file,
    load_master_key,
    mac4,
    meter_factor,
    sm4_ecb_decrypt,
    sm4_ecb_encrypt,
)

METER = "123456781012"
CUSTOMER = "000000000001"
EXPIRY = datetime(2026, 12, 31, 23, 59, 59)
GBT_KEY = bytes.fromhex("0123456789ABCDEFFEDCBA9876543210")
OTHER_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")


def authenticate(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, meter: str = METER
) -> Session:
    challenge = machine.start_identity_auth(meter)
    random2, serial = esam.identity_auth(challenge.cipher1, challenge.random1, challenge.factor)
    return machine.finish_identity_auth(challenge, random2, serial)


def flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


@pytest.fixture
def machine() -> SimulatedEncryptionMachine:
    return SimulatedEncryptionMachine(TEST_MASTER_KEY)


@pytest.fixture
def esam() -> SimulatedEsam:
    return SimulatedEsam(TEST_MASTER_KEY, METER)


@pytest.fixture
def session(machine: SimulatedEncryptionMachine, esam: SimulatedEsam) -> Session:
    return authenticate(machine, esam)


# --------------------------------------------------------------------------- primitives


def test_sm4_gbt_32907_example() -> None:
    check_sm4_support()
    cipher = sm4_ecb_encrypt(GBT_KEY, GBT_KEY)
    assert cipher == bytes.fromhex("681EDF34D206965E86B3E94F536E4246")
    assert sm4_ecb_decrypt(GBT_KEY, cipher) == GBT_KEY


def test_sm4_rejects_bad_sizes() -> None:
    with pytest.raises(SecurityError, match="16 bytes"):
        sm4_ecb_encrypt(GBT_KEY[:15], GBT_KEY)
    with pytest.raises(SecurityError, match="multiple of 16"):
        sm4_ecb_encrypt(GBT_KEY, b"abc")
    with pytest.raises(SecurityError, match="multiple of 16"):
        sm4_ecb_decrypt(GBT_KEY, bytes(17))


def test_check_sm4_support_reports_missing_sm4(monkeypatch: pytest.MonkeyPatch) -> None:
    class NoSm4:
        def __init__(self, key: bytes) -> None:
            raise UnsupportedAlgorithm("SM4 is not supported by this backend")

    monkeypatch.setattr(security, "_sm4_checked", False)
    monkeypatch.setattr(algorithms, "SM4", NoSm4)
    with pytest.raises(SecurityError, match=r"lacks SM4.*install"):
        check_sm4_support()
    with pytest.raises(SecurityError, match="lacks SM4"):
        sm4_ecb_encrypt(GBT_KEY, GBT_KEY)


@pytest.mark.parametrize(
    ("data", "mac"),
    [
        (b"", "8C338E5A27E349BEAE39214FEDA97099"),  # openssl: one block 80 00..
        (GBT_KEY, "780D0374AF7C0B35625605638319CF2C"),  # openssl: a full extra pad block
        (bytes(range(31)), "548F2184856FC3E38D5BA138103A0CDE"),  # openssl: 80 fills block 2
    ],
)
def test_cbc_mac_golden(data: bytes, mac: str) -> None:
    assert cbc_mac(GBT_KEY, data) == bytes.fromhex(mac)
    assert mac4(GBT_KEY, data) == bytes.fromhex(mac)[:4]


def test_cbc_mac_is_chained_ecb_with_method_2_padding() -> None:
    data = b"feikong \x80\x00 padding"
    padded = data + b"\x80" + bytes(-(len(data) + 1) % 16)
    state = bytes(16)
    for i in range(0, len(padded), 16):
        block = bytes(a ^ b for a, b in zip(state, padded[i : i + 16], strict=True))
        state = sm4_ecb_encrypt(GBT_KEY, block)
    assert cbc_mac(GBT_KEY, data) == state
    # Padding method 2 tells a trailing 80 from the pad: these MACs must differ.
    assert cbc_mac(GBT_KEY, b"ab") != cbc_mac(GBT_KEY, b"ab\x80")


def test_cbc_mac_iv() -> None:
    iv = bytes(range(16))
    assert cbc_mac(GBT_KEY, b"x", iv) != cbc_mac(GBT_KEY, b"x")
    with pytest.raises(SecurityError, match="IV"):
        cbc_mac(GBT_KEY, b"x", b"short")


# --------------------------------------------------------------------------- diversification


def test_meter_factor() -> None:
    assert meter_factor(METER) == bytes.fromhex("0000123456781012")
    assert meter_factor("000000000001") == bytes.fromhex("0000000000000001")


@pytest.mark.parametrize(
    "bad", ["12345678101", "1234567810123", "12345678101A", "１２３４５６７８１０１２"]
)
def test_meter_factor_rejects_non_digits(bad: str) -> None:
    with pytest.raises(SecurityError, match="12 decimal digits"):
        meter_factor(bad)


def test_diversify_golden() -> None:
    # openssl: SM4-ECB(FEIKONG-TEST-KEY, 0000123456781012 || FFFFEDCBA987EFED)
    assert diversify(TEST_MASTER_KEY, meter_factor(METER)) == bytes.fromhex(
        "008BFE0CEAD11137F9FE9E9030C53339"
    )


def test_diversify_is_deterministic_and_per_meter() -> None:
    a = diversify(TEST_MASTER_KEY, meter_factor(METER))
    assert a == diversify(TEST_MASTER_KEY, meter_factor(METER))
    assert a != diversify(TEST_MASTER_KEY, meter_factor("123456781013"))
    assert a != diversify(OTHER_KEY, meter_factor(METER))
    assert len(a) == 16


def test_diversify_validates_sizes() -> None:
    with pytest.raises(SecurityError, match="master key must be 16 bytes"):
        diversify(b"short", meter_factor(METER))
    with pytest.raises(SecurityError, match="factor must be 8 bytes"):
        diversify(TEST_MASTER_KEY, b"\x00" * 7)


def test_card_key_differs_from_meter_key() -> None:
    assert customer_factor(METER)[:2] == b"\xff\xff"
    assert card_key(TEST_MASTER_KEY, METER) != diversify(TEST_MASTER_KEY, meter_factor(METER))
    assert card_key(TEST_MASTER_KEY, CUSTOMER) != card_key(TEST_MASTER_KEY, "000000000002")


# --------------------------------------------------------------------------- key files


def test_load_master_key_none_is_test_key() -> None:
    assert load_master_key(None) == (TEST_MASTER_KEY, True)
    assert len(TEST_MASTER_KEY) == 16


def test_load_master_key_good_file(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text("# lab key\n0011 2233 4455 6677  # first half\n8899aabbccddeeff\n\n")
    assert load_master_key(path) == (OTHER_KEY, False)
    assert load_master_key(str(path)) == (OTHER_KEY, False)


def test_format_key_file_round_trips(tmp_path: Path) -> None:
    path = tmp_path / "master.key"
    path.write_text(format_key_file(OTHER_KEY))
    assert load_master_key(path) == (OTHER_KEY, False)
    path.write_text(format_key_file(TEST_MASTER_KEY))
    assert load_master_key(path) == (TEST_MASTER_KEY, True)
    with pytest.raises(SecurityError, match="16 bytes"):
        format_key_file(b"short")


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("00112233445566778899AABBCCDDEEGG\n", "not hex digits"),
        ("00112233445566778899AABBCCDDEE\n", "32 hex digits.*found 30"),
        ("00112233445566778899AABBCCDDEEFF00\n", "32 hex digits.*found 34"),
        ("# only a comment\n", "found 0"),
    ],
)
def test_load_master_key_bad_file(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "bad.key"
    path.write_text(text)
    with pytest.raises(SecurityError, match=match) as info:
        load_master_key(path)
    assert "bad.key" in str(info.value)


def test_load_master_key_missing_or_binary(tmp_path: Path) -> None:
    with pytest.raises(SecurityError, match=r"nope\.key.*does not exist"):
        load_master_key(tmp_path / "nope.key")
    binary = tmp_path / "binary.key"
    binary.write_bytes(b"\xff\xfe\x00\x81")
    with pytest.raises(SecurityError, match=r"binary\.key.*not a text file"):
        load_master_key(binary)
    with pytest.raises(SecurityError, match="cannot be read"):
        load_master_key(tmp_path)  # a directory


# --------------------------------------------------------------------------- interfaces


def test_simulations_satisfy_the_interfaces(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam
) -> None:
    assert isinstance(machine, EncryptionMachine)
    assert isinstance(esam, Esam)


def test_all_errors_are_security_errors() -> None:
    for exc in (AuthenticationFailed, MacError, ReplayError, SuspendedError, NoSessionError):
        assert issubclass(exc, SecurityError)


# --------------------------------------------------------------------------- identity auth


def test_identity_challenge_shape(machine: SimulatedEncryptionMachine) -> None:
    challenge = machine.start_identity_auth(METER)
    assert len(challenge.random1) == len(challenge.cipher1) == len(challenge.factor) == 8
    assert challenge.factor == meter_factor(METER)
    assert challenge.meter_number == METER
    assert machine.start_identity_auth(METER).random1 != challenge.random1
    with pytest.raises(SecurityError, match="random1 must be 8 bytes"):
        IdentityChallenge(random1=b"1", cipher1=bytes(8), factor=bytes(8))


def test_identity_auth_establishes_matching_sessions(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam
) -> None:
    assert not esam.has_session
    session = authenticate(machine, esam)
    assert esam.has_session
    assert session.meter_number == METER
    assert len(session.random2) == 4
    assert session.esam_serial == esam.esam_serial
    assert len(session.esam_serial) == 8
    assert "key=" not in repr(session)
    assert session.key.hex() not in repr(session)


def test_wrong_master_key_fails_authentication(esam: SimulatedEsam) -> None:
    wrong = SimulatedEncryptionMachine(OTHER_KEY)
    challenge = wrong.start_identity_auth(METER)
    with pytest.raises(AuthenticationFailed, match="different master keys"):
        esam.identity_auth(challenge.cipher1, challenge.random1, challenge.factor)
    assert esam.mac_errors == 1
    assert not esam.has_session


def test_wrong_meter_factor_fails_authentication(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam
) -> None:
    challenge = machine.start_identity_auth("123456781013")
    with pytest.raises(AuthenticationFailed, match="not this meter"):
        esam.identity_auth(challenge.cipher1, challenge.random1, challenge.factor)
    assert esam.mac_errors == 1


def test_failed_authentication_ends_the_old_session(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, session: Session
) -> None:
    challenge = machine.start_identity_auth(METER)
    with pytest.raises(AuthenticationFailed):
        esam.identity_auth(flip(challenge.cipher1, 0), challenge.random1, challenge.factor)
    assert not esam.has_session
    with pytest.raises(NoSessionError):
        esam.open_control_block(machine.control_block(session, 0x1A, EXPIRY))


# --------------------------------------------------------------------------- control blocks


def test_control_round_trip(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, session: Session
) -> None:
    block = machine.control_block(session, 0x1A, EXPIRY)
    assert len(block) == CONTROL_BLOCK_SIZE == 20
    assert esam.open_control_block(block) == (0x1A, 0x00, EXPIRY)
    block = machine.control_block(session, 0x3A, datetime(2030, 1, 2, 3, 4, 5, 999), n2=0x05)
    assert esam.open_control_block(block) == (0x3A, 0x05, datetime(2030, 1, 2, 3, 4, 5))
    assert esam.mac_errors == 0


def test_control_plaintext_layout(session: Session, machine: SimulatedEncryptionMachine) -> None:
    block = machine.control_block(session, 0x1B, EXPIRY)
    plain = sm4_ecb_decrypt(session.key, block[:16])
    assert plain == bytes.fromhex("1B00261231235959") + b"\x80" + bytes(7)
    assert block[16:] == mac4(session.key, session.random2 + session.esam_serial + block[:16])


def test_golden_session_and_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """The whole chain with fixed randoms, against values computed with the openssl CLI."""
    randoms: Iterator[bytes] = iter([bytes.fromhex("0102030405060708"), bytes.fromhex("A1A2A3A4")])
    monkeypatch.setattr(os, "urandom", lambda n: next(randoms))
    machine = SimulatedEncryptionMachine(TEST_MASTER_KEY)
    esam = SimulatedEsam(TEST_MASTER_KEY, METER)
    challenge = machine.start_identity_auth(METER)
    assert challenge.cipher1 == bytes.fromhex("8B2C709D1AE45237")
    random2, serial = esam.identity_auth(challenge.cipher1, challenge.random1, challenge.factor)
    assert serial == bytes.fromhex("E5A0123456781012")
    session = machine.finish_identity_auth(challenge, random2, serial)
    assert session.key == bytes.fromhex("851E8857A4508A398CCC2F33CB8864C5")
    block = machine.control_block(session, 0x1A, EXPIRY)
    assert block == bytes.fromhex("E2AD70A1499953540B884DB4B589BB95" + "592735E4")
    recharge = machine.recharge_block(session, 10000, 2, CUSTOMER)
    assert recharge == bytes.fromhex("00002710000000020E4D563F00000000000191EA6FC6")


@pytest.mark.parametrize("index", [0, 7, 15, 16, 19])
def test_tampered_control_block_is_a_mac_error(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, session: Session, index: int
) -> None:
    block = machine.control_block(session, 0x1A, EXPIRY)
    with pytest.raises(MacError, match="1 of 5"):
        esam.open_control_block(flip(block, index))
    assert esam.mac_errors == 1
    assert esam.open_control_block(block)[0] == 0x1A  # the genuine block still works


def test_replayed_block_is_rejected(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, session: Session
) -> None:
    block = machine.control_block(session, 0x1A, EXPIRY)
    esam.open_control_block(block)
    with pytest.raises(ReplayError, match="replay"):
        esam.open_control_block(block)
    assert esam.mac_errors == 0


def test_block_from_old_session_fails_the_mac(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, session: Session
) -> None:
    old_block = machine.control_block(session, 0x1A, EXPIRY)
    new_session = authenticate(machine, esam)
    assert new_session.key != session.key
    with pytest.raises(MacError):
        esam.open_control_block(old_block)
    assert esam.mac_errors == 1
    assert esam.open_control_block(machine.control_block(new_session, 0x1A, EXPIRY))[0] == 0x1A


def test_control_requires_a_session(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam
) -> None:
    session = authenticate(machine, esam)
    esam.invalidate_session()
    with pytest.raises(NoSessionError, match="identity authentication required"):
        esam.open_control_block(machine.control_block(session, 0x1A, EXPIRY))
    assert esam.mac_errors == 0


def test_block_from_another_meter_fails(machine: SimulatedEncryptionMachine) -> None:
    esam_a = SimulatedEsam(TEST_MASTER_KEY, METER)
    esam_b = SimulatedEsam(TEST_MASTER_KEY, "123456781013")
    session_a = authenticate(machine, esam_a)
    authenticate(machine, esam_b, "123456781013")
    with pytest.raises(MacError):
        esam_b.open_control_block(machine.control_block(session_a, 0x1A, EXPIRY))


def _forge(session: Session, plain16: bytes) -> bytes:
    """A correctly MACed block around arbitrary plaintext (as a faulty encryption machine)."""
    cipher = sm4_ecb_encrypt(session.key, plain16)
    return cipher + mac4(session.key, session.random2 + session.esam_serial + cipher)


@pytest.mark.parametrize(
    ("plain", "match"),
    [
        (bytes.fromhex("1A00261231235959") + bytes(8), "padding"),
        (bytes.fromhex("1A002612312359") + b"\x80" + bytes(8), "padding"),
        (bytes.fromhex("1A0026123123595A") + b"\x80" + bytes(7), "not BCD"),
        (bytes.fromhex("1A00261332235959") + b"\x80" + bytes(7), "not a valid time"),
    ],
)
def test_malformed_plaintext(
    session: Session, esam: SimulatedEsam, plain: bytes, match: str
) -> None:
    with pytest.raises(SecurityError, match=match) as info:
        esam.open_control_block(_forge(session, plain))
    assert type(info.value) is SecurityError
    assert esam.mac_errors == 0


def test_control_block_argument_checks(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, session: Session
) -> None:
    with pytest.raises(SecurityError, match="single bytes"):
        machine.control_block(session, 0x100, EXPIRY)
    with pytest.raises(SecurityError, match=r"2000\.\.2099"):
        machine.control_block(session, 0x1A, datetime(2100, 1, 1))
    with pytest.raises(SecurityError, match="20 bytes"):
        esam.open_control_block(bytes(19))


# --------------------------------------------------------------------------- suspension


def test_suspension_after_max_errors(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, session: Session
) -> None:
    bad = flip(machine.control_block(session, 0x1A, EXPIRY), 19)
    for count in range(1, 5):
        with pytest.raises(MacError):
            esam.open_control_block(bad)
        assert esam.mac_errors == count
        assert not esam.suspended
    with pytest.raises(MacError, match="now suspended"):
        esam.open_control_block(bad)
    assert esam.suspended
    assert not esam.has_session
    challenge = machine.start_identity_auth(METER)
    with pytest.raises(SuspendedError, match="suspended"):
        esam.identity_auth(challenge.cipher1, challenge.random1, challenge.factor)
    with pytest.raises(SuspendedError):
        esam.open_control_block(bad)
    with pytest.raises(SuspendedError):
        esam.open_recharge_block(bytes(RECHARGE_BLOCK_SIZE))
    with pytest.raises(SuspendedError):
        esam.verify_card_mac(CUSTOMER, b"data", bytes(4))
    assert esam.mac_errors == 5

    esam.reset_mac_errors()
    assert not esam.suspended
    new_session = authenticate(machine, esam)
    assert esam.open_control_block(machine.control_block(new_session, 0x1B, EXPIRY))[0] == 0x1B


def test_max_mac_errors_parameter(machine: SimulatedEncryptionMachine) -> None:
    esam = SimulatedEsam(TEST_MASTER_KEY, METER, max_mac_errors=1)
    wrong = SimulatedEncryptionMachine(OTHER_KEY).start_identity_auth(METER)
    with pytest.raises(AuthenticationFailed, match="now suspended"):
        esam.identity_auth(wrong.cipher1, wrong.random1, wrong.factor)
    assert esam.suspended
    assert SimulatedEsam(TEST_MASTER_KEY, METER, max_mac_errors=3, mac_errors=3).suspended
    with pytest.raises(SecurityError, match="at least 1"):
        SimulatedEsam(TEST_MASTER_KEY, METER, max_mac_errors=0)


# --------------------------------------------------------------------------- recharge


def test_recharge_round_trip(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, session: Session
) -> None:
    payload = machine.recharge_block(session, 12345, 7, CUSTOMER)
    assert len(payload) == RECHARGE_BLOCK_SIZE == 22
    assert payload[:4] == (12345).to_bytes(4, "big")
    assert payload[4:8] == (7).to_bytes(4, "big")
    assert payload[12:18] == bytes.fromhex(CUSTOMER)
    assert esam.open_recharge_block(payload) == (12345, 7, CUSTOMER)
    # No replay check: a duplicate recharge is the meter's purchase-count rule (SERR bit1).
    assert esam.open_recharge_block(payload) == (12345, 7, CUSTOMER)


@pytest.mark.parametrize(
    ("index", "which"), [(0, "MAC1"), (5, "MAC1"), (9, "MAC1"), (13, "MAC2"), (21, "MAC2")]
)
def test_tampered_recharge_is_a_mac_error(
    machine: SimulatedEncryptionMachine,
    esam: SimulatedEsam,
    session: Session,
    index: int,
    which: str,
) -> None:
    payload = machine.recharge_block(session, 12345, 7, CUSTOMER)
    with pytest.raises(MacError, match=which):
        esam.open_recharge_block(flip(payload, index))
    assert esam.mac_errors == 1


def test_recharge_checks(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, session: Session
) -> None:
    with pytest.raises(SecurityError, match="4 bytes"):
        machine.recharge_block(session, 2**32, 1, CUSTOMER)
    with pytest.raises(SecurityError, match="purchase count"):
        machine.recharge_block(session, 1, -1, CUSTOMER)
    with pytest.raises(SecurityError, match="customer number"):
        machine.recharge_block(session, 1, 1, "12345")
    with pytest.raises(SecurityError, match="22 bytes"):
        esam.open_recharge_block(bytes(21))
    esam.invalidate_session()
    with pytest.raises(NoSessionError):
        esam.open_recharge_block(machine.recharge_block(session, 1, 1, CUSTOMER))


# --------------------------------------------------------------------------- cards


def test_card_mac(machine: SimulatedEncryptionMachine, esam: SimulatedEsam) -> None:
    data = bytes.fromhex("00002710 00000002")
    mac = machine.card_mac(CUSTOMER, data)
    assert mac == mac4(card_key(TEST_MASTER_KEY, CUSTOMER), data)
    esam.verify_card_mac(CUSTOMER, data, mac)
    with pytest.raises(MacError, match="card MAC"):
        esam.verify_card_mac(CUSTOMER, flip(data, 0), mac)
    with pytest.raises(MacError):
        esam.verify_card_mac("000000000002", data, mac)
    other = SimulatedEncryptionMachine(OTHER_KEY).card_mac(CUSTOMER, data)
    with pytest.raises(MacError):
        esam.verify_card_mac(CUSTOMER, data, other)
    assert esam.mac_errors == 0  # card errors do not count towards suspension


# --------------------------------------------------------------------------- state files


def test_session_state_round_trip(
    machine: SimulatedEncryptionMachine, esam: SimulatedEsam, session: Session
) -> None:
    assert SimulatedEsam(TEST_MASTER_KEY, METER).session_state() is None
    used = machine.control_block(session, 0x1A, EXPIRY)
    esam.open_control_block(used)
    state = esam.session_state()
    assert state is not None
    assert all(isinstance(v, str) for v in state.values())
    assert session.key.hex() not in "".join(state.values())

    restored = SimulatedEsam(TEST_MASTER_KEY, METER)
    restored.restore_session(dict(state))
    assert restored.has_session
    assert restored.session_state() == state
    with pytest.raises(ReplayError):
        restored.open_control_block(used)
    fresh = machine.control_block(session, 0x1B, EXPIRY)
    assert restored.open_control_block(fresh)[0] == 0x1B

    restored.restore_session(None)
    assert not restored.has_session


def test_restore_session_rejects_bad_state(esam: SimulatedEsam, session: Session) -> None:
    state = esam.session_state()
    assert state is not None
    with pytest.raises(SecurityError, match="malformed"):
        esam.restore_session({"random1": "zz"})
    with pytest.raises(SecurityError, match="malformed"):
        esam.restore_session({**state, "random2": "xyz"})
    with pytest.raises(SecurityError, match="random2 must be 4 bytes"):
        esam.restore_session({**state, "random2": "00"})
    with pytest.raises(SecurityError, match="belongs to ESAM"):
        SimulatedEsam(TEST_MASTER_KEY, METER, bytes(8)).restore_session(state)
    with pytest.raises(SecurityError, match="not 20 bytes"):
        esam.restore_session({**state, "accepted": "00"})


def test_explicit_esam_serial(machine: SimulatedEncryptionMachine) -> None:
    serial = bytes.fromhex("0102030405060708")
    esam = SimulatedEsam(TEST_MASTER_KEY, METER, serial)
    session = authenticate(machine, esam)
    assert session.esam_serial == serial
    assert esam.open_control_block(machine.control_block(session, 0x2A, EXPIRY))[0] == 0x2A
    with pytest.raises(SecurityError, match="8 bytes"):
        SimulatedEsam(TEST_MASTER_KEY, METER, b"\x01")


def test_randoms_are_fresh(machine: SimulatedEncryptionMachine, esam: SimulatedEsam) -> None:
    sessions = [authenticate(machine, esam) for _ in range(3)]
    for a, b in itertools.combinations(sessions, 2):
        assert a.random1 != b.random1
        assert a.random2 != b.random2
        assert a.key != b.key
