"""``feikong frame``: explains a frame, or says clearly that it is not one."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from feikong.cli import app

runner = CliRunner()
TV2 = "FE FE FE FE 68 12 10 78 56 34 12 68 91 08 33 33 33 33 83 83 33 33 D7 16"
TV6B = "FE FE FE FE 68 12 10 78 56 34 12 68 DC 01 37 1A 16"


def test_explains_a_read_reply() -> None:
    result = runner.invoke(app, ["frame", *TV2.split()])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "50.50 kWh" in out
    assert "123456781012" in out
    assert "combined active" in out
    assert "组合有功" in out


def test_json_output() -> None:
    result = runner.invoke(app, ["frame", TV2.replace(" ", ""), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data[0]["address"] == "123456781012"
    assert data[0]["value"]["value"] == "50.50"
    assert data[0]["value"]["unit"] == "kWh"


def test_error_bits_by_name() -> None:
    result = runner.invoke(app, ["frame", *TV6B.split(), "--json"])
    assert result.exit_code == 0
    assert json.loads(result.output)[0]["error_bits"] == ["UNAUTHORIZED"]


def test_two_frames_in_one_paste() -> None:
    result = runner.invoke(app, ["frame", TV2, TV6B, "--json"])
    assert [e["control"] for e in json.loads(result.output)] == [0x91, 0xDC]


def test_not_a_frame_exits_2_with_one_line() -> None:
    for junk in (["hello"], ["12", "34"], ["68", "12"], [TV2[:-2] + "17"]):
        result = runner.invoke(app, ["frame", *junk])
        assert result.exit_code == 2, (junk, result.output)
        assert "not a DL/T 645 frame" in result.output
        assert len(result.output.strip().splitlines()) <= 2


def test_bad_checksum_is_named() -> None:
    result = runner.invoke(app, ["frame", TV2[:-5] + "D8 16"])
    assert result.exit_code == 2
    assert "checksum" in result.output
