from typing import Any

from django import forms

from apps.accounts.forms import ServiceForm
from apps.accounts.models import Organization, Plan
from apps.billing.models import BudgetSettings


class BudgetForm(ServiceForm):
    """An admin's budget choices. The plan is shown to everyone but only a superuser may change it."""

    plan = forms.ChoiceField(label="Plan", choices=Plan.choices, required=False)
    monthly_override = forms.IntegerField(
        label="Monthly budget (tokens)",
        min_value=0,
        required=False,
        help_text="Empty uses the plan's allowance. A new value applies to this month at once.",
    )
    warn_at_80 = forms.BooleanField(label="Email the admins at 80% of the budget", required=False)
    warn_at_100 = forms.BooleanField(label="Email the admins when the budget is spent", required=False)

    def __init__(self, *args: Any, can_change_plan: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # A disabled field ignores what is posted and keeps its initial value.
        self.fields["plan"].disabled = not can_change_plan

    @classmethod
    def for_settings(
        cls, org: Organization, prefs: BudgetSettings, data: Any = None, *, can_change_plan: bool = False
    ) -> "BudgetForm":
        initial = {
            "plan": org.plan,
            "monthly_override": prefs.monthly_override,
            "warn_at_80": prefs.warn_at_80,
            "warn_at_100": prefs.warn_at_100,
        }
        return cls(data, initial=initial, can_change_plan=can_change_plan)


PERIOD_FORMAT = "%Y-%m"
PERIOD_INVALID = "Give the month as YYYY-MM, for example 2026-10."


class PeriodForm(forms.Form):
    """The month to show (`?period=2026-10`, its first day once cleaned); empty means this month."""

    period = forms.DateField(
        label="Month",
        input_formats=[PERIOD_FORMAT],
        required=False,
        error_messages={"invalid": PERIOD_INVALID},
    )
