"""Build a simulated meter from its configuration (电能表工厂).

The fleet calls :func:`build_meter` for every :class:`~meter_sim.config.MeterConfig`;
it is the one place that maps a meter kind to a class.

``MeterConfig.extra`` keys understood by every meter:

``auth_validity_min``  identity-auth validity in minutes (default 5)
``max_mac_errors``     MAC errors before the ESAM is suspended (default 5)
``passwords``          ``{level: "6 hex digits"}`` (default ``000000`` for all)
``parameters``         ``{"04001401": 1, ...}`` initial parameter values (by DI)
``tou``                day time-segment table, e.g. ``"00:00=4,08:00=2,22:00=4"``

Local (card) meters take more keys (money, limits, prices): see :mod:`meter_sim.local`.
"""

from __future__ import annotations

from breaker_sim import BreakerLink
from protocol.clock import Clock

from .config import MeterConfig, MeterKind, SimulatedMeter

__all__ = ["build_meter"]


def build_meter(
    config: MeterConfig, clock: Clock, breaker: BreakerLink, *, master_key: bytes
) -> SimulatedMeter:
    """A meter of ``config.kind`` on ``clock`` driving ``breaker``.

    ``master_key`` is the lab master key (16 bytes): the meter's ESAM key is dispersed
    from it with the meter number. Raises ``ValueError`` for a kind not built here.
    """
    if config.kind is MeterKind.REMOTE:
        from .remote import RemoteMeter

        return RemoteMeter(config, clock, breaker, master_key=master_key)
    if config.kind is MeterKind.LOCAL:
        from .local import LocalMeter

        return LocalMeter(config, clock, breaker, master_key=master_key)
    raise ValueError(f"unknown meter kind {config.kind!r}")
