"""Fuzzing (模糊测试) of everything that reads outside input.

Five targets, each a harness that takes one input (``bytes``) and checks it against
the code's contract:

``parser``
    The DL/T 645 stream parser (:class:`protocol.StreamParser`, fed in chunks), the
    frame codec (:func:`protocol.frame.decode_frame`), the message decoder and the
    frame explainer behind ``feikong frame``.
``meter``
    The meter simulator's request handling (:meth:`meter_sim.fleet.Fleet.handle`): a
    sequence of whole, well-framed requests (any control code, DI and payload, to a
    meter, the broadcast or a wildcard address) with the clock stepped between them.
``archive``
    The head-end's archive CSV import (:func:`headend.archive.import_archive`).
``cis-csv``
    The payments CSV import (:func:`prepaid.cis.import_payments`) into the ledger.
``tariff``
    Tariff TOML files (:func:`prepaid.tariff.load_book`) and rating under them.

A harness fails (raises :class:`Finding`, or lets the unexpected exception through)
when the code raises anything but its package's documented errors, when a meter logs an
internal error, or when a result breaks an invariant (a frame that does not re-encode
to the bytes it came from, a re-import that credits money twice, …).

``python -m feikong.fuzz TARGET [libFuzzer flags] [CORPUS_DIR | FILE…]`` runs one
target under atheris (coverage-guided, in its own process: libFuzzer exits the process
when it is done); ``feikong bench fuzz`` drives it. This module itself imports none
of the fuzzed packages, so atheris can instrument them as they are imported.
"""

from __future__ import annotations

__all__ = ["TARGET_NAMES"]

TARGET_NAMES: tuple[str, ...] = ("parser", "meter", "archive", "cis-csv", "tariff")
