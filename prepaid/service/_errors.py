"""The fee-control notification and customer-service exceptions.

Every message names what was refused and what to do. :class:`ServiceError` is the
base of the errors of :mod:`prepaid.service`, :mod:`prepaid.reminders`,
:mod:`prepaid.dunning` and :mod:`prepaid.anomaly_orders`.
"""

from __future__ import annotations

__all__ = [
    "AnomalyOrderError",
    "BillError",
    "CampaignError",
    "DunningError",
    "ReminderError",
    "SelectionError",
    "ServiceError",
]


class ServiceError(Exception):
    """Base class of every error raised on purpose by the notification workflows."""


class SelectionError(ServiceError, ValueError):
    """A choice of customers (areas, lines, customer numbers) that cannot be used."""


class ReminderError(ServiceError):
    """A low-balance reminder run that cannot go on (database, settings)."""


class DunningError(ServiceError):
    """A dunning run, batch or print that cannot go on; the message says why."""


class BillError(ServiceError, ValueError):
    """A monthly-bill run that cannot go on (a month in the future, …)."""


class CampaignError(ServiceError, ValueError):
    """A custom SMS that cannot be sent (empty text, nobody chosen, …)."""


class AnomalyOrderError(ServiceError):
    """An anomaly work order that cannot be opened, recorded or closed."""
