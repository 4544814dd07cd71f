"""The console's top-level screens, in the order of the navigation bar.

Each module defines one :class:`~console.screens.base.ConsoleScreen` subclass; add a
new screen by adding its ``module:Class`` path here (imported lazily by the app).
"""

from __future__ import annotations

__all__ = ["SCREEN_PATHS"]

SCREEN_PATHS: tuple[str, ...] = (
    "console.screens.dashboard:DashboardScreen",
    "console.screens.customers:CustomersScreen",
    "console.screens.meters:MetersScreen",
    "console.screens.approvals:ApprovalsScreen",
    "console.screens.schedule:ScheduleScreen",
    "console.screens.workorders:WorkOrdersScreen",
    "console.screens.anomalies:AnomaliesScreen",
    "console.screens.dunning:DunningScreen",
    "console.screens.settings:SettingsScreen",
    "console.screens.guarantee:GuaranteeScreen",
    "console.screens.messages:MessagesScreen",
    "console.screens.audit:AuditScreen",
)
