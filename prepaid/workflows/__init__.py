"""Fee-control workflows (费控流程): disconnection, reconnection, power guarantee.

- :mod:`.disconnection` — select, re-rate, request → level-1 → level-2 approval →
  notice → trip outside protected hours → repeated trips → failure work order.
- :mod:`.reconnection` — on payment: cancel what is pending, permit-close or direct
  close, the "reconnected" message, an on-site work order when it fails.
- :mod:`.guarantee` — power guarantee (保电): never tripped; 3AH to the meters.
- :mod:`.sla` — approval time limits: overdue requests are escalated (never decided).
- :mod:`.orchestrator` — :class:`FeeControl` wires them to the head-end's events,
  the payment hook and the shared clock.
"""

from ._common import (
    ControlPort,
    Customer,
    GuaranteeLockoutError,
    NotFoundError,
    RateFunction,
    WorkflowConfig,
    WorkflowContext,
    WorkflowError,
    WorkflowStateError,
)
from .disconnection import (
    Candidate,
    Disconnection,
    DisconnectionEvent,
    DisconnectionWorkflow,
    SelectionReport,
    TickReport,
)
from .guarantee import GuaranteeStatus, GuaranteeSyncReport, GuaranteeWorkflow
from .orchestrator import FeeControl
from .reconnection import Reconnection, ReconnectionWorkflow
from .sla import ApprovalSla, ApprovalWait
from .tables import DisconnectionState, NextAction, ReconnectionMethod, ReconnectionState

__all__ = [
    "ApprovalSla",
    "ApprovalWait",
    "Candidate",
    "ControlPort",
    "Customer",
    "Disconnection",
    "DisconnectionEvent",
    "DisconnectionState",
    "DisconnectionWorkflow",
    "FeeControl",
    "GuaranteeLockoutError",
    "GuaranteeStatus",
    "GuaranteeSyncReport",
    "GuaranteeWorkflow",
    "NextAction",
    "NotFoundError",
    "RateFunction",
    "Reconnection",
    "ReconnectionMethod",
    "ReconnectionState",
    "ReconnectionWorkflow",
    "SelectionReport",
    "TickReport",
    "WorkflowConfig",
    "WorkflowContext",
    "WorkflowError",
    "WorkflowStateError",
]
