"""Billing services: budget periods, the reservation protocol, warnings, settings and the ledger.

Callers import from here; each concern lives in its own module.
"""

from apps.billing.services.budgets import budget_update
from apps.billing.services.ledger import usage_record
from apps.billing.services.periods import (
    budget_period_current,
    budget_period_of_month,
    budget_periods_open,
    budget_remaining,
    budget_standing,
    budget_tokens,
)
from apps.billing.services.reconcile import budget_period_reconcile, budget_periods_reconcile
from apps.billing.services.reservations import (
    RESERVATION_TTL,
    BudgetExhausted,
    budget_release,
    budget_reserve,
    budget_settle,
    reservations_expire,
)
from apps.billing.services.warnings import WARNING_LEVELS

__all__ = [
    "RESERVATION_TTL",
    "WARNING_LEVELS",
    "BudgetExhausted",
    "budget_period_current",
    "budget_period_of_month",
    "budget_period_reconcile",
    "budget_periods_open",
    "budget_periods_reconcile",
    "budget_release",
    "budget_remaining",
    "budget_reserve",
    "budget_settle",
    "budget_standing",
    "budget_tokens",
    "budget_update",
    "reservations_expire",
    "usage_record",
]
