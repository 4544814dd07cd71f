"""The stream parser: chunks, noise, bad checksums, bounded memory, never crashes."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import WILDCARD, Address, Frame, ProtocolError, StreamParser, encode_frame
from protocol.frame import MAX_FRAME, decode_frame, remember_addresses

F1 = Frame(Address("123456781012"), 0x91, b"\x00\x00\x00\x00\x50\x50\x00\x00")
F2 = Frame(Address("000000000001"), 0x11, b"\x00\x01\x00\x00")
W1 = encode_frame(F1)
W2 = encode_frame(F2, preamble=0)


def test_whole_frames() -> None:
    p = StreamParser()
    assert p.feed(W1 + W2) == [F1, F2]
    assert p.pending == 0
    assert p.stats.frames == 2 and p.stats.noise_bytes == 0


def test_one_byte_at_a_time() -> None:
    p = StreamParser()
    out: list[Frame] = []
    for b in W1 + W2:
        out += p.feed(bytes([b]))
    assert out == [F1, F2]


def test_noise_before_between_and_after() -> None:
    p = StreamParser()
    noise = b"\x00\x68\x12\x16\xff"
    assert p.feed(noise + W1 + noise + W2 + noise[:2]) == [F1, F2]
    assert p.stats.noise_bytes >= 8


def test_bad_checksum_dropped_and_reported() -> None:
    seen: list[ProtocolError] = []
    p = StreamParser(on_error=seen.append)
    bad = bytearray(W1)
    bad[-2] ^= 0x01
    assert p.feed(bytes(bad) + W2) == [F2]
    assert p.stats.checksum_errors == 1
    assert len(seen) == 1 and "checksum" in str(seen[0])
    assert list(p.errors) == seen


def test_partial_frame_kept_until_complete() -> None:
    p = StreamParser()
    assert p.feed(W1[:15]) == []
    assert p.pending == 11  # FE preamble dropped, partial frame kept
    assert p.feed(W1[15:]) == [F1]
    assert p.pending == 0


def test_reset_forgets_partial() -> None:
    p = StreamParser()
    p.feed(W1[:15])
    p.reset()
    assert p.feed(W1[15:]) == []
    assert p.feed(W2) == [F2]


def test_memory_bounded_under_endless_noise() -> None:
    rnd = random.Random(7)
    p = StreamParser()
    for _ in range(2000):
        p.feed(bytes(rnd.randrange(256) for _ in range(64)))
        assert p.pending <= MAX_FRAME
    assert p.feed(b"\x00" * MAX_FRAME + W1) == [F1]


def test_errors_kept_are_bounded() -> None:
    p = StreamParser(max_errors_kept=4)
    bad = bytearray(W2)
    bad[-2] ^= 0x01
    for _ in range(10):
        p.feed(bytes(bad))
    assert len(p.errors) == 4 and p.stats.checksum_errors == 10


@settings(max_examples=300)
@given(st.binary(max_size=600), st.lists(st.integers(1, 50), max_size=40))
def test_random_bytes_never_crash(blob: bytes, cuts: list[int]) -> None:
    p = StreamParser()
    pos = 0
    for c in [*cuts, len(blob)]:
        p.feed(blob[pos : pos + c])
        pos += c
        assert p.pending <= MAX_FRAME + 50


@settings(max_examples=300)
@given(
    st.binary(max_size=40),
    st.integers(0, len(W1) - 1),
    st.integers(0, 255),
    st.lists(st.integers(1, 10), min_size=1, max_size=20),
)
def test_mutated_frame_then_good_frame(noise: bytes, at: int, value: int, cuts: list[int]) -> None:
    """Whatever is done to one frame, the next good frame still comes out."""
    mutated = bytearray(W1)
    mutated[at] = value
    stream = noise + bytes(mutated) + W2 + W1
    p = StreamParser()
    out: list[Frame] = []
    pos = 0
    while pos < len(stream):
        for c in cuts:
            out += p.feed(stream[pos : pos + c])
            pos += c
    # The two good frames at the end are always recovered, in order.
    assert out[-2:] == [F2, F1]


def test_frames_of_known_addresses_decode_as_any_other() -> None:
    """A meter the master has sent to, or a fleet's meter, decodes from the address cache:
    the frames are the same as decoded the long way."""
    sent = Address("000000731201")  # the master encoded a request to it
    fleet = Address("000000731202")
    remember_addresses([fleet, WILDCARD, "000000731203"])  # type: ignore[list-item]
    encode_frame(Frame(sent, 0x11, bytes.fromhex("01ff0605")))
    for address in (sent, fleet, Address("000000731203")):
        wire = encode_frame(Frame(address, 0x91, bytes.fromhex("01ff0605") + b"\x12\x34"))
        (frame,) = StreamParser().feed(wire)
        assert frame == decode_frame(wire)[0] == Frame(address, 0x91, frame.data)
        assert type(frame.address) is Address
    # a wrong checksum is still refused for a known address
    bad = bytearray(encode_frame(Frame(fleet, 0x91, b"\x00")))
    bad[-2] ^= 0xFF
    parser = StreamParser()
    assert parser.feed(bytes(bad)) == [] and parser.stats.checksum_errors == 1
