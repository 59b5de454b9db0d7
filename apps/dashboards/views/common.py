"""What every dashboards view shares: looking objects up in the caller's org, the filters."""

from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse

from apps.dashboards import selectors
from apps.dashboards.models import Dashboard, Widget
from apps.dashboards.services.filters import Filters, filters_from_query
from datamind.lib.types import AuthenticatedRequest

INVALID = 422


def dashboard_or_404(request: AuthenticatedRequest, pk: int, *, edit: bool = False) -> Dashboard:
    try:
        dashboard = selectors.dashboard_get(org=request.user.org_id, user=request.user, pk=pk)
    except Dashboard.DoesNotExist:
        raise Http404("No such dashboard.")
    if edit and not selectors.can_edit(user=request.user, dashboard=dashboard):
        raise PermissionDenied("Only the dashboard's owner, or an admin, can change it.")
    return dashboard


def widget_or_404(request: AuthenticatedRequest, pk: int, *, edit: bool = False) -> Widget:
    try:
        widget = selectors.widget_get(org=request.user.org_id, user=request.user, pk=pk)
    except Widget.DoesNotExist:
        raise Http404("No such widget.")
    if edit and not selectors.can_edit(user=request.user, dashboard=widget.dashboard):
        raise PermissionDenied("Only the dashboard's owner, or an admin, can change it.")
    return widget


def filters_of(query: QueryDict, dashboard: Dashboard) -> Filters:
    try:
        return filters_from_query(query, keys=[f["key"] for f in dashboard.filter_fields])
    except ValidationError:
        return Filters()


def back_to_grid(request: AuthenticatedRequest, dashboard: Dashboard, filters: Filters) -> HttpResponse:
    if request.htmx:
        context = {
            "dashboard": dashboard,
            "widgets": selectors.dashboard_tiles(dashboard=dashboard),
            "filters_query": filters.querystring(),
            "can_edit": selectors.can_edit(user=request.user, dashboard=dashboard),
        }
        return render(request, "dashboards/dashboard_detail.html#grid", context)
    url = reverse("dashboards:dashboard-detail", args=[dashboard.pk])
    return redirect(f"{url}?{filters.querystring()}" if filters.active else url)
