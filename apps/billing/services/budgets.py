"""An admin's budget settings: the monthly override, the warnings, and (superusers) the plan."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from apps.accounts.models import Organization, Plan, User
from apps.accounts.services import audit_log_record
from apps.billing.models import BudgetPeriod, BudgetSettings
from apps.billing.services.periods import budget_period_current, budget_tokens


@transaction.atomic
def budget_update(
    *,
    org: Organization,
    actor: User,
    override: int | None,
    warn_at_80: bool,
    warn_at_100: bool,
    plan: str | None = None,
) -> BudgetSettings:
    """An admin changes the org's budget. An explicit override applies to the current month at once;
    a plan change alone applies from the next month (the current month's budget stays frozen)."""
    if not (actor.is_superuser or (actor.org_id == org.pk and actor.is_org_admin)):
        raise PermissionDenied("Only an admin of this organisation can change its budget.")
    if override is not None and override < 0:
        raise ValidationError({"override": "The monthly budget cannot be negative."})
    if plan is not None and plan not in Plan.values:
        raise ValidationError({"plan": f"Choose one of: {', '.join(Plan.values)}."})
    prefs, _ = BudgetSettings.objects.select_for_update().get_or_create(org=org)
    old = {
        "override": prefs.monthly_override,
        "warn_at_80": prefs.warn_at_80,
        "warn_at_100": prefs.warn_at_100,
        "plan": org.plan,
    }
    prefs.monthly_override = override
    prefs.warn_at_80 = warn_at_80
    prefs.warn_at_100 = warn_at_100
    prefs.updated_by = actor
    prefs.updated_at = timezone.now()
    prefs.save()
    if plan is not None and plan != org.plan:
        org.plan = plan
        org.save(update_fields=["plan"])
    new = {"override": override, "warn_at_80": warn_at_80, "warn_at_100": warn_at_100, "plan": org.plan}
    if override != old["override"]:
        # The admin raised or lowered the limit to act on this month, so the open period follows;
        # removing the override falls back to the plan's allowance.
        period = budget_period_current(org=org)
        BudgetPeriod.objects.filter(pk=period.pk).update(budget=budget_tokens(org=org))
    audit_log_record(
        action="billing.budget_update", org=org, actor=actor, target=prefs, metadata={"old": old, "new": new}
    )
    return prefs
