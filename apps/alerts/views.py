"""The alert pages: the list, create/edit with "Test now", the detail with its history, muting,
"Why did this happen?", and the notifications page.

Members see every alert of their org; analysts create alerts and change their own; admins change
any. Another org's alert, event or notification is not found: 404, never 403.
"""

from datetime import timedelta
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.timezone import now
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.models import Role
from apps.alerts import selectors
from apps.alerts.forms import AlertForm, MuteForm
from apps.alerts.models import Alert, AlertEvent, EventState
from apps.alerts.services import alerts as alert_services
from apps.alerts.services.charts import chart_point, series_chart, sparkline_path
from apps.alerts.services.evaluation import event_history_chart
from apps.alerts.services.investigate import investigation_start
from apps.alerts.services.notify import notification_mark_read
from apps.alerts.services.preview import alert_preview
from apps.alerts.services.schedule import alert_cron, upcoming_runs
from apps.connections.engines.base import EngineError
from apps.connections.safety import UnsafeSQLError
from datamind.lib.exceptions import DataMindError
from datamind.lib.htmx import render_page_or_partial
from datamind.lib.permissions import role_required
from datamind.lib.types import AuthenticatedRequest
from datamind.lib.vega import vega_bundle_version

INVALID = 422
EVENTS_PAGE_SIZE = 50
NOTIFICATIONS_PAGE_SIZE = 50
CANNOT_EDIT = "Only the alert's owner or an admin can change it."


def _alert_or_404(request: AuthenticatedRequest, pk: int) -> Alert:
    try:
        return selectors.alert_get(org=request.user.org, pk=pk)
    except Alert.DoesNotExist:
        raise Http404("No such alert in your organisation.")


def _editable_alert_or_404(request: AuthenticatedRequest, pk: int) -> Alert:
    alert = _alert_or_404(request, pk)
    if not alert_services.alert_can_edit(user=request.user, alert=alert):
        raise PermissionDenied(CANNOT_EDIT)
    return alert


@require_GET
@role_required(Role.VIEWER)
def index(request: AuthenticatedRequest) -> HttpResponse:
    alerts = list(selectors.alert_list(org=request.user.org))
    lines = selectors.alert_sparklines(alerts=alerts)
    rows = [{"alert": a, "sparkline": sparkline_path(lines[a.pk])} for a in alerts]
    return render(request, "alerts/index.html", {"rows": rows, "now": now()})


def _form_page(request: AuthenticatedRequest, form: AlertForm, alert: Alert | None) -> HttpResponse:
    status = INVALID if form.is_bound else 200
    context = {"form": form, "alert": alert, "version": vega_bundle_version()}
    return render(request, "alerts/alert_form.html", context, status=status)


@require_http_methods(["GET", "POST"])
@role_required(Role.ANALYST)
def alert_create(request: AuthenticatedRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = AlertForm(
        data, org=request.user.org, initial=selectors.alert_prefill(user=request.user, source=request.GET)
    )
    if form.is_valid():
        try:
            alert = alert_services.alert_create(
                owner=request.user, connection=form.cleaned_data["connection"], **form.alert_fields()
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, f"{alert.name} is watched from now on.")
            return redirect("alerts:detail", pk=alert.pk)
    return _form_page(request, form, None)


@require_http_methods(["GET", "POST"])
@role_required(Role.ANALYST)
def alert_edit(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    alert = _editable_alert_or_404(request, pk)
    data = request.POST if request.method == "POST" else None
    form = AlertForm(data, org=request.user.org, initial=AlertForm.initial_from(alert))
    if form.is_valid():
        fields = form.alert_fields()
        try:
            alert_services.alert_update(alert=alert, connection=form.cleaned_data["connection"], **fields)
        except ValidationError as error:
            form.add_service_error(error)
            alert = _alert_or_404(request, pk)
        else:
            messages.success(request, f"{alert.name} was saved.")
            return redirect("alerts:detail", pk=alert.pk)
    return _form_page(request, form, alert)


@require_POST
@role_required(Role.ANALYST)
def alert_test(request: AuthenticatedRequest) -> HttpResponse:
    """ "Test now": the form's SQL and condition over the metric's history, as a fragment."""
    form = AlertForm(request.POST, org=request.user.org)
    context: dict[str, Any] = {"form": form}
    form.is_valid()
    needed = ("connection", "sql", "condition_kind")
    if any(name not in form.cleaned_data for name in needed):
        context["error"] = "Choose a connection, write the metric's SQL and pick a condition first."
    else:
        try:
            context["preview"] = alert_preview(
                user=request.user,
                connection=form.cleaned_data["connection"],
                sql=form.cleaned_data["sql"],
                name=form.cleaned_data.get("name") or "The metric",
                condition_kind=form.cleaned_data["condition_kind"],
                condition_config=alert_services.condition_clean(
                    form.cleaned_data["condition_kind"], form.condition_config()
                ),
            )
        except ValidationError as error:
            context["error"] = " ".join(error.messages)
        except (UnsafeSQLError, EngineError, DataMindError) as error:
            context["error"] = error.detail
    return render(request, "alerts/partials/preview.html", context)


def _history_chart(alert: Alert) -> tuple[str, dict | None]:
    """A series metric: its latest series, banded; a lone number: its value at each check."""
    latest = alert.events.exclude(points=[]).exclude(value=None).first()
    if latest is not None and len(latest.rows) > 1:
        return "Latest series", event_history_chart(latest)
    history = list(alert.events.exclude(value=None).order_by("-scheduled_for")[:500])[::-1]
    points = [
        chart_point(
            e.scheduled_for.isoformat(),
            e.value,
            low=e.band_low,
            high=e.band_high,
            fired=e.state == EventState.TRIGGERED,
        )
        for e in history
    ]
    return "History", series_chart(points, metric=alert.name) if points else None


@require_GET
@role_required(Role.VIEWER)
def alert_detail(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    alert = _alert_or_404(request, pk)
    events = Paginator(selectors.event_list(alert=alert), EVENTS_PAGE_SIZE).get_page(request.GET.get("page"))
    chart_title, chart = _history_chart(alert)
    context = {
        "alert": alert,
        "events": events,
        "deliveries": selectors.delivery_list(alert=alert)[:50],
        "chart": chart,
        "chart_title": chart_title,
        "can_edit": alert_services.alert_can_edit(user=request.user, alert=alert),
        "upcoming": upcoming_runs(alert_cron(alert), alert.timezone, now()) if alert.is_active else [],
        "mute_form": MuteForm(initial={"hours": 24}),
        "version": vega_bundle_version(),
    }
    return render_page_or_partial(request, "alerts/alert_detail.html", context, partial="events")


@require_POST
@role_required(Role.ANALYST)
def alert_delete(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    alert = _editable_alert_or_404(request, pk)
    alert_services.alert_delete(alert=alert)
    messages.success(request, f"{alert.name} was deleted.")
    return redirect("alerts:index")


@require_POST
@role_required(Role.ANALYST)
def alert_mute(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    alert = _editable_alert_or_404(request, pk)
    form = MuteForm(request.POST)
    if form.is_valid():
        hours = form.cleaned_data["hours"]
        alert_services.alert_mute(alert=alert, until=now() + timedelta(hours=hours) if hours else None)
        messages.success(
            request, f"{alert.name} is muted for {hours} hours." if hours else f"{alert.name} is unmuted."
        )
    else:
        messages.error(request, "Mute for 0 to 720 hours.")
    return redirect("alerts:detail", pk=alert.pk)


@require_POST
@role_required(Role.ANALYST)
def alert_evaluate(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    alert = _editable_alert_or_404(request, pk)
    event = alert_services.alert_run_now(alert=alert)
    messages.info(request, f"Checked now: {event.message}" if event else "The alert is gone.")
    return redirect("alerts:detail", pk=alert.pk)


@require_GET
@role_required(Role.VIEWER)
def event_investigate(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """The link in every notification: a chat about this event, created on first visit."""
    try:
        event = selectors.event_get(org=request.user.org, pk=pk)
    except AlertEvent.DoesNotExist:
        raise Http404("No such alert event in your organisation.")
    if event.alert.connection_id is None:
        raise Http404("The alert's connection is gone.")
    session = investigation_start(user=request.user, event=event)
    return redirect("chat:session-detail", pk=session.pk)


@require_GET
@role_required(Role.VIEWER)
def notification_list(request: AuthenticatedRequest) -> HttpResponse:
    notifications = selectors.notification_list(user=request.user)
    page = Paginator(notifications, NOTIFICATIONS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render_page_or_partial(
        request, "alerts/notification_list.html", {"page": page}, partial="notification-items"
    )


@require_POST
@role_required(Role.VIEWER)
def notification_read(request: AuthenticatedRequest, pk: int | None = None) -> HttpResponse:
    if pk is not None and not selectors.notification_list(user=request.user).filter(pk=pk).exists():
        raise Http404("No such notification.")
    notification_mark_read(user=request.user, pk=pk)
    return redirect(reverse("alerts:notifications"))
