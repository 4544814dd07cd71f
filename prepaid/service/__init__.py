"""Customer service (客户服务) and the parts the notification workflows share.

- :func:`send_monthly_bills` — the monthly bill SMS (月度账单): last and this month's
  readings, usage, charge and balance, once per customer and month.
- :func:`send_custom_sms` — custom SMS (自定义短信) typed by customer service to chosen
  customers (areas, lines, supply units, customer numbers), recorded and audited.
- :func:`invalid_phones` / :func:`export_invalid_phones` — numbers that cannot get an
  SMS (无效号码: empty, too short, letters, bad prefix …), listed and exported as CSV.
- :func:`run_tier_reminders` — after the daily rating, one message when a customer
  enters a higher tariff tier (阶梯提醒), once per tier and tier cycle.
- :class:`Selection` — which customers; :class:`Population` — the set-based SQL of
  accounts with their settings in force, shared with :mod:`prepaid.reminders`,
  :mod:`prepaid.dunning` and :mod:`prepaid.anomaly_orders`.
- :func:`after_rating` (in :mod:`prepaid.service.daily`) — what runs after each daily
  rating: reminders, automatic dunning, tier reminders, anomaly work orders.

Everything selects accounts in SQL (no query per account) and stores messages in bulk
through the outbox's table, one message per episode.
"""

from ._errors import (
    AnomalyOrderError,
    BillError,
    CampaignError,
    DunningError,
    ReminderError,
    SelectionError,
    ServiceError,
)
from ._population import Population, Selection
from .bills import BillReport, MonthlyBill, list_bills, send_monthly_bills
from .custom import MAX_TEXT, Campaign, list_campaigns, send_custom_sms
from .phones import InvalidPhone, export_invalid_phones, invalid_phones, problem_counts
from .tiers import TierReport, run_tier_reminders

__all__ = [
    "MAX_TEXT",
    "AnomalyOrderError",
    "BillError",
    "BillReport",
    "Campaign",
    "CampaignError",
    "DunningError",
    "InvalidPhone",
    "MonthlyBill",
    "Population",
    "ReminderError",
    "Selection",
    "SelectionError",
    "ServiceError",
    "TierReport",
    "export_invalid_phones",
    "invalid_phones",
    "list_bills",
    "list_campaigns",
    "problem_counts",
    "run_tier_reminders",
    "send_custom_sms",
    "send_monthly_bills",
]
