"""The interim demo: what exists today, end to end on this machine.

1. decodes the worked frames of the standard;
2. runs a trip / permit-close / manual-close sequence on a simulated external
   breaker over real Modbus TCP, on an accelerated clock;
3. measures the codec for one second.
"""

from __future__ import annotations

import asyncio
from datetime import datetime

from rich.table import Table

from breaker_sim import Breaker, BreakerServer, ModbusBreakerLink
from protocol import AcceleratedClock
from protocol.bench import run_codec_bench
from protocol.explain import explain, parse_hex

from .output import console

FRAMES = [
    "FE FE FE FE 68 12 10 78 56 34 12 68 11 04 33 33 33 33 E7 16",
    "FE FE FE FE 68 12 10 78 56 34 12 68 91 08 33 33 33 33 83 83 33 33 D7 16",
    "FE FE FE FE 68 12 10 78 56 34 12 68 D1 01 35 0D 16",
    "FE FE FE FE 68 12 10 78 56 34 12 68 1C 10 35 89 67 45 AB 89 67 45 4D 33 8C 8C 56 64 45 59"
    " 6C 16",
    "FE FE FE FE 68 12 10 78 56 34 12 68 91 06 36 38 33 37 83 35 2D 16",
]


async def _breaker_sequence(permit_delay_s: float = 60.0) -> list[tuple[str, str, str]]:
    clock = AcceleratedClock(datetime(2026, 11, 28, 10, 0, 0), speed=600.0)
    breaker = Breaker(clock, name="demo breaker")
    steps: list[tuple[str, str, str]] = []
    server = BreakerServer([breaker], tcp=("127.0.0.1", 0))
    await server.start()
    try:
        port = server.port
        assert port is not None
        async with ModbusBreakerLink("127.0.0.1", port, 1) as link:

            async def step(what: str, outcome: object) -> None:
                state = await link.read_state()
                stamp = clock.now().strftime("%H:%M:%S")
                steps.append(
                    (stamp, what, f"{getattr(outcome, 'message', outcome)} → {state.name}")
                )

            await step("meter sends trip signal", await link.trip())
            await step("customer pushes the lever", await link.manual_close())
            await clock.sleep(permit_delay_s)
            await step("meter sends permit-close (60 s later)", await link.permit_close(True))
            await step("customer pushes the lever", await link.manual_close())
    finally:
        await server.stop()
    return steps


def run_protocol_demo() -> None:
    console.rule("feikong demo")
    console.print("DL/T 645-2007 frames, decoded:")
    for text in FRAMES:
        for exp in explain(parse_hex(text)):
            console.print(f"  [cyan]{text[12:44]}…[/]  {exp.summary}", highlight=False)
    console.print("\nExternal micro-breaker over Modbus TCP (SPEC S1 sequence):")
    table = Table("clock", "step", "result")
    for row in asyncio.run(_breaker_sequence()):
        table.add_row(*row)
    console.print(table)
    console.print("\nCodec benchmark (1 s each way):")
    result = run_codec_bench(1.0)
    console.print(f"  encode_frames_per_s={result.encode_per_s:.0f}", highlight=False)
    console.print(f"  decode_frames_per_s={result.decode_per_s:.0f}", highlight=False)
