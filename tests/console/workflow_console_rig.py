"""A small fee-control database for the console's workflow screens, and an app to show one.

Built on the dunning rig (:mod:`tests.prepaid.dunning_rig`: supply unit 3301, line L1,
areas A1 and A2, a stepped clock at Monday 2 March 2026 08:00) with one operator per
role (:func:`tests.prepaid.security_helpers.add_staff`: ``operator``, ``approver.l1``,
``approver.l2``, ``fault.handler``, ``customer.service``, ``auditor``, admin ``root``)
and ``zhang``, an operator who also holds approver-l1 (to show the requester refused).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from sqlalchemy.engine import Engine
from textual.app import App
from textual.pilot import Pilot
from textual.screen import Screen
from textual.widgets import Button

from console.context import ConsoleContext
from console.queries.approvals import JobQueueControl
from prepaid.balance import adopt_opening_balances
from prepaid.cis import LedgerCis
from prepaid.users import Operator, Role, Users
from prepaid.workflows import Disconnection, FeeControl, WorkflowConfig
from protocol.clock import Clock

from ..prepaid.dunning_rig import Rig, make_rig
from ..prepaid.security_helpers import PASSWORD, add_staff, make_users

CUSTOMERS = ("3300000001", "3300000002", "3300000003")


def _no_rating(
    engine: Engine, account_ids: Sequence[int], day: date, *, clock: Clock | None = None
) -> None:
    """Balances are set by the rig; re-rating has nothing to add."""


@dataclass
class ConsoleRig:
    rig: Rig
    users: Users
    staff: dict[str, Operator]
    fc: FeeControl

    @property
    def engine(self) -> Engine:
        return self.rig.engine

    def ctx(self, who: str) -> ConsoleContext:
        return ConsoleContext(self.rig.engine, self.rig.clock, self.staff[who])

    def request(self, customer: str, by: str = "zhang") -> Disconnection:
        return self.fc.disconnection.request(customer, by=self.staff[by])


def console_rig(tmp_path: Path) -> ConsoleRig:
    """Three customers in arrears (5.40 yuan) — two in A1, one (paper notices) in A2."""
    rig = make_rig(tmp_path)
    rig.add(CUSTOMERS[0], balance=-540, phone="13800138001", name="张三")
    rig.add(CUSTOMERS[1], balance=-540, phone="12345", name="李四")
    rig.add(CUSTOMERS[2], balance=-540, phone="13800138003", area="A2", paper=True, name="王五")
    rig.meters()
    adopt_opening_balances(rig.engine, LedgerCis(rig.engine, clock=rig.clock))
    users = make_users(rig.engine, rig.clock)
    staff = add_staff(users)
    staff["zhang"] = users.add(
        "zhang",
        display_name="张伟",
        password=PASSWORD,
        roles=[Role.OPERATOR, Role.APPROVER_L1],
        by=staff["admin"],
    )
    fc = FeeControl(
        rig.engine,
        JobQueueControl(rig.engine, rig.clock),
        clock=rig.clock,
        settings=rig.settings,
        config=WorkflowConfig(require_dunning=False),
        rate=_no_rating,
    )
    return ConsoleRig(rig, users, staff, fc)


class ScreenApp(App[None]):
    """The smallest app that shows one console screen (as the console's app pushes it)."""

    TITLE = "feikong console"

    def __init__(self, screen: Screen[None]) -> None:
        super().__init__()
        self.first = screen

    def on_mount(self) -> None:
        self.push_screen(self.first)

    # what the screens' shared frame (the navigation bar) asks of the console's app
    def visible_screens(self) -> list[type[Screen[None]]]:
        return [type(self.first)]

    def show_screen(self, key: str) -> None:
        """Only one screen here."""


async def click(pilot: Pilot[None], selector: str) -> None:
    """Click a button and let its handler run. A button ignores clicks for 0.2 s after
    one (its "active" look); a test clicking it again at once would be ignored, so
    that look is cleared first."""
    pilot.app.screen.query_one(selector, Button).remove_class("-active")
    await pilot.click(selector)
    await pilot.pause()


async def settle(pilot: Pilot[None]) -> None:
    """Leave the screen in a look that does not depend on timing, for a snapshot: no
    widget focused (an input's cursor blinks), the mouse off every widget and no button
    in its 0.2 s "active" look."""
    for button in pilot.app.screen.query(Button):
        button.remove_class("-active")
    pilot.app.screen.set_focus(None)
    await pilot.hover(None, offset=(0, 0))
    await pilot.pause()


def status(app: App[None]) -> str:
    """The screen's status line."""
    from console.widgets.workflow_common import StatusLine

    return app.screen.query_one("#status", StatusLine).text
