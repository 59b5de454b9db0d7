import csv
from collections.abc import Iterator
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.views.decorators.http import require_GET, require_POST

from apps.accounts.models import Role
from apps.billing import selectors
from apps.billing.forms import PERIOD_INVALID, BudgetForm, PeriodForm
from apps.billing.models import BudgetPeriod
from apps.billing.services import (
    budget_period_current,
    budget_period_of_month,
    budget_standing,
    budget_update,
)
from datamind.lib.htmx import render_page_or_partial
from datamind.lib.permissions import role_required
from datamind.lib.types import AuthenticatedRequest
from datamind.lib.vega import vega_bundle_version

TEMPLATE = "billing/index.html"
# 422 for invalid input, as on every page (base.html lets htmx swap it).
INVALID = 422
LEDGER_COLUMNS = (
    "created_at",
    "user",
    "provider",
    "model",
    "purpose",
    "input_tokens",
    "output_tokens",
    "estimated_cost",
    "session_id",
    "message_id",
)


def _daily_chart_spec(daily: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "$schema": "https://vega.github.io/schema/vega-lite/v5.json",
        "width": "container",
        "height": 220,
        "data": {
            "values": [
                {"day": row["day"].isoformat(), "tokens": row["total_tokens"], "calls": row["calls"]}
                for row in daily
            ]
        },
        "mark": {"type": "bar", "tooltip": True},
        "encoding": {
            "x": {"field": "day", "type": "temporal", "timeUnit": "yearmonthdate", "title": "Day"},
            "y": {"field": "tokens", "type": "quantitative", "title": "Tokens"},
        },
    }


def _usage_context(
    request: AuthenticatedRequest,
    *,
    period: BudgetPeriod,
    period_form: PeriodForm,
    form: BudgetForm | None = None,
) -> dict[str, Any]:
    org = request.user.org
    current = budget_period_current(org=org)
    summary = selectors.usage_summary(org=org, period=period)
    daily = selectors.usage_daily(org=org, period=period)
    if form is None and request.user.is_org_admin:
        form = BudgetForm.for_settings(
            org, selectors.budget_settings_get(org=org), can_change_plan=request.user.is_superuser
        )
    return {
        "org": org,
        "period": period,
        "current": current,
        "is_current": period.pk == current.pk,
        "periods": selectors.budget_periods_with_usage(org=org, current=current),
        "period_form": period_form,
        "budget": budget_standing(period=period),
        "summary": summary,
        "chart_spec": _daily_chart_spec(daily),
        "by_user": selectors.usage_by_user(org=org, period=period),
        "by_model": selectors.usage_by_model(org=org, period=period),
        "by_purpose": selectors.usage_by_purpose(org=org, period=period),
        "top_questions": selectors.usage_top_questions(org=org, period=period),
        "version": vega_bundle_version(),
        "form": form,
    }


def _period_or_404(request: AuthenticatedRequest, period_form: PeriodForm) -> BudgetPeriod:
    try:
        return budget_period_of_month(org=request.user.org, start=period_form.cleaned_data["period"])
    except BudgetPeriod.DoesNotExist:
        raise Http404("There is no usage period for that month.")


@require_GET
@role_required(Role.VIEWER)
def index(request: AuthenticatedRequest) -> HttpResponse:
    period_form = PeriodForm(request.GET)
    if not period_form.is_valid():
        # A malformed ?period= (a URL, not a form the user filled in): this month's page, with the
        # picker saying what is wrong.
        period = budget_period_current(org=request.user.org)
        return render(
            request, TEMPLATE, _usage_context(request, period=period, period_form=period_form), status=400
        )
    context = _usage_context(request, period=_period_or_404(request, period_form), period_form=period_form)
    return render_page_or_partial(request, TEMPLATE, context, partial="usage")


@require_POST
@role_required(Role.ADMIN)
def budget(request: AuthenticatedRequest) -> HttpResponse:
    org = request.user.org
    can_change_plan = request.user.is_superuser
    form = BudgetForm.for_settings(
        org, selectors.budget_settings_get(org=org), request.POST, can_change_plan=can_change_plan
    )
    if form.is_valid():
        try:
            budget_update(
                org=org,
                actor=request.user,
                override=form.cleaned_data["monthly_override"],
                warn_at_80=form.cleaned_data["warn_at_80"],
                warn_at_100=form.cleaned_data["warn_at_100"],
                plan=(form.cleaned_data["plan"] or None) if can_change_plan else None,
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, "Budget settings saved.")
            return redirect("billing:index")
    context = _usage_context(
        request, period=budget_period_current(org=org), period_form=PeriodForm(), form=form
    )
    return render(request, TEMPLATE, context, status=INVALID)


class _Echo:
    """csv.writer wants a file; this one hands each line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _ledger_lines(period: BudgetPeriod, request: AuthenticatedRequest) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(LEDGER_COLUMNS)
    for record in selectors.usage_ledger(org=request.user.org, period=period).iterator(chunk_size=2000):
        yield writer.writerow(
            (
                record.created_at.isoformat(),
                record.user.email if record.user else "",
                record.provider,
                record.model,
                record.purpose,
                record.input_tokens,
                record.output_tokens,
                record.estimated_cost,
                record.session_id or "",
                record.message_id or "",
            )
        )


@require_GET
@role_required(Role.VIEWER)
def ledger_csv(request: AuthenticatedRequest) -> HttpResponse | StreamingHttpResponse:
    period_form = PeriodForm(request.GET)
    if not period_form.is_valid():
        return HttpResponseBadRequest(PERIOD_INVALID, content_type="text/plain; charset=utf-8")
    period = _period_or_404(request, period_form)
    response = StreamingHttpResponse(_ledger_lines(period, request), content_type="text/csv; charset=utf-8")
    filename = f"usage-{period.period_start:%Y-%m}.csv"
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    return response
