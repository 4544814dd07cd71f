"""What runs after each daily rating (日算费后): reminders, auto dunning, tiers, anomalies.

:func:`after_rating` is the one call the daily schedule (or ``feikong service
after-rating``) makes once the day's readings are rated:

1. low-balance reminders (:func:`prepaid.reminders.run_reminders`, areas with auto
   reminder on);
2. automatic dunning (:func:`prepaid.dunning.run_dunning`, areas with auto dunning
   on), paper notices printed into ``notices_dir`` when given;
3. tier reminders (:func:`prepaid.service.run_tier_reminders`);
4. anomaly work orders for readings missing N days up to ``day``
   (:func:`prepaid.anomaly_orders.open_anomaly_orders`).

Each step is idempotent (one message or work order per episode), so running it twice
— or again after a crash in the middle — sends nothing twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from protocol.clock import Clock

from ..anomaly_orders import AnomalyReport, open_anomaly_orders
from ..dunning import DunningReport, run_dunning
from ..messages import TemplateSet, default_templates
from ..reminders import ReminderReport, run_reminders
from ..settings import SettingsStore
from .tiers import TierReport, run_tier_reminders

__all__ = ["DailyReport", "after_rating"]


@dataclass(frozen=True, slots=True)
class DailyReport:
    """The four steps' reports."""

    reminders: ReminderReport
    dunning: DunningReport
    tiers: TierReport
    anomalies: AnomalyReport

    def to_dict(self) -> dict[str, Any]:
        return {
            "reminders": self.reminders.to_dict(),
            "dunning": self.dunning.to_dict(),
            "tiers": self.tiers.to_dict(),
            "anomalies": self.anomalies.to_dict(),
        }


def after_rating(
    engine: Engine,
    day: date,
    *,
    clock: Clock,
    settings: SettingsStore | None = None,
    templates: TemplateSet | None = None,
    notices_dir: Path | None = None,
) -> DailyReport:
    """Run the four steps for the readings of ``day`` (see the module docstring)."""
    settings = settings or SettingsStore(engine, clock=clock)
    templates = templates or default_templates()
    reminders = run_reminders(engine, clock=clock, settings=settings, templates=templates)
    dunning = run_dunning(
        engine, clock=clock, settings=settings, templates=templates, notices_dir=notices_dir
    )
    tiers = run_tier_reminders(engine, clock=clock, settings=settings, templates=templates)
    anomalies = open_anomaly_orders(engine, day, clock=clock, settings=settings)
    return DailyReport(reminders, dunning, tiers, anomalies)
