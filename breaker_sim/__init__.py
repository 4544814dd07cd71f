"""breaker_sim — the external micro circuit breaker (外置微型断路器), simulated.

:class:`Breaker` is the state machine (closed → trip → open-locked → permit
close → open-permitted → pushed by hand → closed), with faults and a slow trip.
:class:`BreakerServer` serves breakers over Modbus TCP/RTU (the register map is in
:mod:`breaker_sim.modbus`). A meter drives a breaker through a
:class:`BreakerLink`: :class:`InProcessBreakerLink` or :class:`ModbusBreakerLink`.
"""

from .breaker import (
    Breaker,
    BreakerConfig,
    BreakerEvent,
    BreakerFault,
    BreakerState,
    Outcome,
    parse_fault,
)
from .errors import (
    BreakerConfigError,
    BreakerConnectionError,
    BreakerError,
    BreakerRefusedError,
    BreakerServerError,
)
from .interface import BreakerLink, InProcessBreakerLink, ModbusBreakerLink
from .modbus import (
    MAX_UNITS,
    BreakerServer,
    Coil,
    DiscreteInput,
    HoldingRegister,
    InputRegister,
    serve_breakers,
)

__all__ = [
    "MAX_UNITS",
    "Breaker",
    "BreakerConfig",
    "BreakerConfigError",
    "BreakerConnectionError",
    "BreakerError",
    "BreakerEvent",
    "BreakerFault",
    "BreakerLink",
    "BreakerRefusedError",
    "BreakerServer",
    "BreakerServerError",
    "BreakerState",
    "Coil",
    "DiscreteInput",
    "HoldingRegister",
    "InProcessBreakerLink",
    "InputRegister",
    "ModbusBreakerLink",
    "Outcome",
    "parse_fault",
    "serve_breakers",
]
