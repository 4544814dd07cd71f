"""open_transport / open_frame_server: backends chosen by URL."""

from __future__ import annotations

import pytest

from protocol.address import Address
from protocol.errors import TransportError
from protocol.frame import Frame
from protocol.transport import (
    URL_FORMS,
    MemoryFrameServer,
    MemoryTransport,
    MqttFrameServer,
    MqttTransport,
    SerialFrameServer,
    SerialSettings,
    SerialTransport,
    TcpFrameServer,
    TcpTransport,
    open_frame_server,
    open_transport,
)


async def silent(frame: Frame) -> Frame | None:
    return None


def test_tcp_url() -> None:
    link = open_transport("tcp://10.0.0.5:8899?timeout=1.5&connect_attempts=5")
    assert isinstance(link, TcpTransport)
    assert (link.host, link.port) == ("10.0.0.5", 8899)
    assert link.response_timeout == 1.5
    assert link.connect_attempts == 5
    assert link.url == "tcp://10.0.0.5:8899"
    assert not link.is_open


def test_tcp_url_with_ipv6_host() -> None:
    link = open_transport("tcp://[::1]:8645")
    assert isinstance(link, TcpTransport)
    assert link.host == "::1"
    assert link.url == "tcp://[::1]:8645"


def test_serial_url() -> None:
    link = open_transport("serial:///dev/ttyUSB0?baud=9600&parity=N&timeout=2&gap=0.1")
    assert isinstance(link, SerialTransport)
    assert link.port == "/dev/ttyUSB0"
    assert link.settings == SerialSettings(9600, "N", 8, 1)
    assert link.response_timeout == 2
    assert link.inter_frame_gap == 0.1


def test_serial_url_defaults_to_2400_8E1() -> None:
    link = open_transport("serial:///dev/ttyS1")
    assert isinstance(link, SerialTransport)
    assert str(link.settings) == "2400 8E1"


def test_serial_url_with_a_windows_port_and_inter_byte_off() -> None:
    link = open_transport("serial://COM3?inter_byte_timeout=none&stopbits=2")
    assert isinstance(link, SerialTransport)
    assert link.port == "COM3"
    assert link.inter_byte_timeout is None
    assert link.settings.stopbits == 2


def test_tcp_url_with_pipelining() -> None:
    link = open_transport("tcp://10.0.0.5:8899?pipeline=64")
    assert isinstance(link, TcpTransport)
    assert link.max_in_flight == 64
    assert open_transport("tcp://10.0.0.5:8899").max_in_flight == 1  # one at a time by default


def test_mqtt_url_path_is_the_topic_prefix() -> None:
    link = open_transport("mqtt://broker.lan/site-7/meters?timeout=5&pipeline=16")
    assert isinstance(link, MqttTransport)
    assert (link.host, link.port, link.prefix) == ("broker.lan", 1883, "site-7/meters")
    assert (link.response_timeout, link.max_in_flight, link.preamble) == (5, 16, 0)
    assert link.url == "mqtt://broker.lan:1883/site-7/meters"


def test_mqtt_url_defaults_and_credentials_stay_out_of_the_url() -> None:
    link = open_transport("mqtt://meter%40ops:s3cr%2Ft@10.0.0.9:8883")
    assert isinstance(link, MqttTransport)
    assert (link.port, link.prefix) == (8883, "feikong/meters")
    assert link._broker.username == "meter@ops"
    assert link._broker.password == "s3cr/t"
    assert "s3cr" not in link.url and "ops" not in link.url and "s3cr" not in repr(link)


def test_mem_url() -> None:
    link = open_transport("mem://bench-1?timeout=0.5")
    assert isinstance(link, MemoryTransport)
    assert link.name == "bench-1"
    assert link.response_timeout == 0.5


def test_keyword_overrides_win_over_the_query() -> None:
    link = open_transport("serial:///dev/ttyUSB0?parity=E", parity="N", response_timeout=4)
    assert isinstance(link, SerialTransport)
    assert link.settings.parity == "N"
    assert link.response_timeout == 4


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://host/file", "unknown transport scheme 'ftp'"),
        ("/dev/ttyUSB0", "not a transport URL"),
        ("", "not a transport URL"),
        ("tcp://host", "needs a host and a port"),
        ("tcp://:80", "needs a host and a port"),
        ("tcp://host:99999", "bad TCP port"),
        ("tcp://host:0", "port 0"),
        ("tcp://host:80/path", "just tcp://HOST:PORT"),
        ("serial://", "names no port"),
        ("serial:///dev/ttyUSB0?baud=abc", "bad value baud='abc'"),
        ("serial:///dev/ttyUSB0?baud=2401", "baud rate 2401 is not supported"),
        ("serial:///dev/ttyUSB0?parity=X", "parity 'X' is not valid"),
        ("serial:///dev/ttyUSB0?colour=red", "unknown parameter 'colour'"),
        ("serial:///dev/ttyUSB0?baud=2400&baudrate=9600", "given twice"),
        ("tcp://host:80?baud=2400", "unknown parameter 'baud'"),
        ("mem://", "mem://NAME"),
        ("mem://name/sub", "mem://NAME"),
        ("tcp://host:80?timeout=0", "response_timeout must be > 0"),
        ("tcp://host:80?pipeline=0", "max_in_flight must be >= 1"),
        ("tcp://host:80?pipeline=8&gap=0.1", "inter_frame_gap is for a half-duplex line"),
        ("serial:///dev/ttyUSB0?pipeline=8", "a serial line is half duplex"),
        ("mqtt://", "names no broker host"),
        ("mqtt://broker:0/x", "port 0 is not a broker port"),
        ("mqtt://broker/a/+/b", r"must not contain the wildcards \+ or #"),
        ("mqtt://broker/a//b", "must not start or end with / nor have empty levels"),
        ("mqtt://broker?baud=2400", "unknown parameter 'baud'"),
        ("mqtt://broker?keepalive=1", "keepalive must be 5..65535 s"),
    ],
)
def test_bad_urls_are_explained(url: str, message: str) -> None:
    with pytest.raises(TransportError, match=message):
        open_transport(url)


def test_unknown_scheme_lists_the_accepted_forms() -> None:
    with pytest.raises(TransportError) as caught:
        open_transport("amqp://broker/feikong/meters")
    for form in URL_FORMS:
        assert form in str(caught.value)
    assert "not supported yet" not in str(caught.value)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(TransportError, match="TcpTransport has no option baudrate"):
        open_transport("tcp://host:80", baudrate=2400)


def test_frame_server_urls() -> None:
    tcp = open_frame_server("tcp://127.0.0.1:0?reply_preamble=0", silent)
    assert isinstance(tcp, TcpFrameServer)
    assert (tcp.port, tcp.reply_preamble) == (0, 0)
    bus = open_frame_server("serial:///dev/ttyUSB1?baud=1200", silent)
    assert isinstance(bus, SerialFrameServer)
    assert bus.settings == SerialSettings(1200, "E", 8, 1)
    broker = open_frame_server("mqtt://10.0.0.9/site-7/meters?reply_delay=0.1", silent)
    assert isinstance(broker, MqttFrameServer)
    assert (broker.host, broker.port, broker.prefix) == ("10.0.0.9", 1883, "site-7/meters")
    assert (broker.reply_delay, broker.reply_preamble) == (0.1, 0)
    with pytest.raises(TransportError, match="unknown parameter 'pipeline'"):
        open_frame_server("mqtt://10.0.0.9?pipeline=4", silent)
    mem = open_frame_server("mem://bench", silent)
    assert isinstance(mem, MemoryFrameServer)
    assert mem.url == "mem://bench"
    with pytest.raises(TransportError, match="unknown parameter 'timeout'"):
        open_frame_server("tcp://127.0.0.1:0?timeout=1", silent)


async def test_url_opened_server_and_client_talk() -> None:
    async def answer(frame: Frame) -> Frame | None:
        return Frame(frame.address, frame.control | 0x80, frame.data + b"\x01\x00\x00\x00")

    request = Frame(Address("000000000001"), 0x11, bytes(4))
    server = open_frame_server("tcp://127.0.0.1:0", answer)
    async with server, open_transport(server.url) as link:
        assert (await link.request(request)).data == bytes(4) + b"\x01\x00\x00\x00"
