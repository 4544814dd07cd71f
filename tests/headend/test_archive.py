"""Archive CSV import and export: bad rows reported by line, good rows loaded."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine

from headend.archive import ALL_COLUMNS, export_archive, import_archive
from headend.errors import ArchiveFormatError
from headend.models import Channel, Meter

GOOD_AND_BAD = """\
record,name,kind,host,port,serial_port,baud,parity,mqtt_topic,concurrency,address,meter_number,channel,key_ref,breaker_type,customer_no,supply_unit,reading_segment,active
channel,gw1,gateway,10.0.0.5,9001,,,,,4,,,,,,,,,
channel,rs485,serial,,,/dev/ttyUSB0,2400,E,,1,,,,,,,,,
channel,dtu,mqtt,broker.local,,,,,feikong/dtu/1,,,,,,,,,,
channel,bad-baud,serial,,,/dev/ttyUSB1,2401,E,,,,,,,,,,,
channel,bad-parity,serial,,,/dev/ttyUSB2,9600,X,,,,,,,,,,,
meter,,remote,,,,,,,,123456781012,M-1,gw1,k1,internal,C001,unit-a,seg-1,true
meter,,local,,,,,,,,000000000002,M-2,rs485,,external,,,,false
# a comment line is skipped

meter,,remote,,,,,,,,12345678101,M-3,gw1,,internal,,,,
meter,,prepay,,,,,,,,000000000004,M-4,gw1,,internal,,,,
meter,,remote,,,,,,,,000000000005,M-5,gw1,,fuse,,,,
meter,,remote,,,,,,,,000000000006,M-6,nowhere,,internal,,,,
meter,,remote,,,,,,,,123456781012,M-1b,gw1,,internal,,,,
meter,,remote,,,,,,,,000000000008,M-8,bad-baud,,internal,,,,
meter,,remote,,,,,,,,00000000000A,M-9,gw1,,internal,,,,
meter,,remote,,,,,,,,000000000010,,gw1,,internal,,,,
thing,,,,,,,,,,,,,,,,,,
channel,tcp-with-baud,tcp,h,1,,9600,,,,,,,,,,,,
meter,,remote,,,,,,,,000000000011,M-11,dtu,,external-remote-close,,,,yes
"""


def count(engine: Engine, table: object) -> int:
    with engine.connect() as c:
        return int(c.execute(select(func.count()).select_from(table)).scalar_one())  # type: ignore[arg-type]


def test_good_rows_load_and_bad_rows_are_reported_by_line(engine: Engine) -> None:
    report = import_archive(engine, io.StringIO(GOOD_AND_BAD))
    reasons = {e.line: e.reason for e in report.errors}
    assert sorted(reasons) == [5, 6, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20]
    assert "baud 2401 is not one of" in reasons[5]
    assert "parity 'X' is not one of N, E, O" in reasons[6]
    assert "address '12345678101' must be 12 decimal (BCD) digits" in reasons[11]
    assert "kind 'prepay' is not one of remote, local" in reasons[12]
    assert "breaker_type 'fuse' is not one of" in reasons[13]
    assert reasons[14] == "unknown channel 'nowhere'"
    assert reasons[15] == "duplicate address 123456781012 (first on line 7)"
    assert reasons[16] == "unknown channel 'bad-baud' (its row on line 5 was rejected)"
    assert "'00000000000A' must be 12 decimal" in reasons[17]
    assert reasons[18] == "meter_number is empty"
    assert "record 'thing' is not channel or meter" in reasons[19]
    assert "baud do(es) not apply to a tcp channel" in reasons[20]
    assert (report.channels_loaded, report.meters_loaded) == (3, 3)
    assert report.updated == 0
    assert count(engine, Meter.__table__) == 3  # type: ignore[attr-defined]
    with engine.connect() as c:
        dtu = c.execute(text("SELECT port, mqtt_topic FROM headend_channel WHERE name='dtu'"))
        assert dtu.one() == (1883, "feikong/dtu/1")
        m2 = c.execute(text("SELECT active, kind FROM headend_meter WHERE address='000000000002'"))
        assert m2.one() == (0, "local")


def test_reimport_updates_and_does_not_duplicate(engine: Engine) -> None:
    import_archive(engine, io.StringIO(GOOD_AND_BAD))
    changed = GOOD_AND_BAD.replace("M-1,gw1,k1,internal,C001", "M-1,rs485,k2,internal,C999")
    report = import_archive(engine, io.StringIO(changed))
    assert report.loaded == 6
    assert report.updated == 6
    assert report.inserted == 0
    assert count(engine, Meter.__table__) == 3  # type: ignore[attr-defined]
    assert count(engine, Channel.__table__) == 3  # type: ignore[attr-defined]
    with engine.connect() as c:
        row = c.execute(
            text(
                "SELECT c.name, m.key_ref, m.customer_no FROM headend_meter m "
                "JOIN headend_channel c ON c.id = m.channel_id WHERE m.address='123456781012'"
            )
        ).one()
    assert tuple(row) == ("rs485", "k2", "C999")


def test_meters_only_and_channels_only_files(engine: Engine, tmp_path: Path) -> None:
    channels = tmp_path / "channels.csv"
    channels.write_text("name,kind,host,port\nbus1,tcp,127.0.0.1,6455\n", encoding="utf-8")
    meters = tmp_path / "meters.csv"
    meters.write_text(
        "\ufeffaddress,meter_number,kind,channel,breaker_type,customer_no\n"
        "000000000001,表1,remote,bus1,internal,户001\n",
        encoding="utf-8",
    )
    assert import_archive(engine, channels).channels_loaded == 1
    report = import_archive(engine, meters)
    assert report.meters_loaded == 1, report.errors
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes(meters.read_text(encoding="utf-8").encode("gb18030"))
    assert import_archive(engine, gbk).meters_updated == 1


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("address,colour\n", "unknown column(s) 'colour'"),
        ("address,kind\n1,remote\n", "a meter file needs the column(s) meter_number"),
        ("name,name\n", "column(s) given twice: name"),
    ],
)
def test_bad_headers_are_format_errors(engine: Engine, content: str, words: str) -> None:
    with pytest.raises(ArchiveFormatError) as info:
        import_archive(engine, io.StringIO(content))
    assert str(info.value).startswith("line 1: ")
    assert words in str(info.value)


def test_unreadable_files(engine: Engine, tmp_path: Path) -> None:
    with pytest.raises(ArchiveFormatError, match="cannot read"):
        import_archive(engine, tmp_path / "missing.csv")
    binary = tmp_path / "binary.csv"
    binary.write_bytes(b"\xff\xfe\x00\x81\x30\x81")
    with pytest.raises(ArchiveFormatError, match="neither UTF-8 nor GB 18030"):
        import_archive(engine, binary)


def test_export_import_round_trip(engine: Engine, tmp_path: Path, db_url: str) -> None:
    import_archive(engine, io.StringIO(GOOD_AND_BAD))
    first = tmp_path / "export1.csv"
    assert export_archive(engine, first) == (3, 3)
    lines = first.read_text(encoding="utf-8").splitlines()
    assert lines[0] == ",".join(ALL_COLUMNS)

    from headend.db import migrate, open_database

    other = open_database(f"sqlite:///{tmp_path / 'other.db'}")
    migrate(other)
    report = import_archive(other, first)
    assert report.errors == []
    assert (report.channels_loaded, report.meters_loaded, report.updated) == (3, 3, 0)
    second = tmp_path / "export2.csv"
    export_archive(other, second)
    assert second.read_text(encoding="utf-8") == first.read_text(encoding="utf-8")


def test_ten_thousand_meters_import_quickly(engine: Engine) -> None:
    out = io.StringIO()
    out.write("record,name,kind,host,port,address,meter_number,channel,breaker_type\n")
    out.write("channel,gw,tcp,127.0.0.1,6455,,,,\n")
    for n in range(10_000):
        out.write(f"meter,,remote,,,{n:012d},M{n},gw,internal\n")
    out.seek(0)
    calls: list[tuple[int, int]] = []
    report = import_archive(engine, out, progress=lambda done, total: calls.append((done, total)))
    assert report.errors == []
    assert report.meters_loaded == 10_000
    assert calls[-1] == (10_001, 10_001)
    assert count(engine, Meter.__table__) == 10_000  # type: ignore[attr-defined]
