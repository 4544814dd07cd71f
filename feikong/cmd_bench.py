"""``feikong bench …``: benchmarks that print ``key=value`` lines."""

from __future__ import annotations

import typer

from .output import console


def codec(
    seconds: float = typer.Option(3.0, "--seconds", help="How long to run each half."),
) -> None:
    """Encode and decode DL/T 645 read replies on one core.

    decode = frame bytes → frame → typed message → typed value with unit.
    """
    from protocol.bench import run_codec_bench

    result = run_codec_bench(seconds)
    console.print(f"encode_frames_per_s={result.encode_per_s:.0f}", highlight=False)
    console.print(f"decode_frames_per_s={result.decode_per_s:.0f}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command("codec")(codec)
