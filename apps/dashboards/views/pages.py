"""Dashboard pages: the list, one dashboard (its widgets load by their own requests), settings,
refresh, the layout, the print page and the PDF."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from apps.accounts.models import Role
from apps.dashboards import selectors
from apps.dashboards.forms import DashboardForm
from apps.dashboards.services import dashboards as services
from apps.dashboards.services import exports
from apps.dashboards.services.filters import Filters, filters_from_query
from apps.dashboards.services.refresh import dashboard_refresh
from apps.dashboards.services.widgets import dashboard_results
from apps.dashboards.views.common import INVALID, back_to_grid, dashboard_or_404, filters_of
from datamind.lib.htmx import render_page_or_partial
from datamind.lib.permissions import role_required
from datamind.lib.types import AuthenticatedRequest
from datamind.lib.vega import vega_bundle_version


@require_GET
@role_required(Role.VIEWER)
def index(request: AuthenticatedRequest) -> HttpResponse:
    dashboards = selectors.dashboard_list(org=request.user.org, user=request.user)
    return render(request, "dashboards/index.html", {"dashboards": dashboards, "form": DashboardForm()})


@require_POST
@role_required(Role.ANALYST)
def dashboard_create(request: AuthenticatedRequest) -> HttpResponse:
    form = DashboardForm(request.POST)
    if form.is_valid():
        try:
            dashboard = services.dashboard_create(
                org=request.user.org, owner=request.user, **form.cleaned_data
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            return redirect("dashboards:dashboard-detail", dashboard.pk)
    dashboards = selectors.dashboard_list(org=request.user.org, user=request.user)
    return render(request, "dashboards/index.html", {"dashboards": dashboards, "form": form}, status=INVALID)


@require_GET
@role_required(Role.VIEWER)
def dashboard_detail(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    dashboard = dashboard_or_404(request, pk)
    keys = [f["key"] for f in dashboard.filter_fields]
    try:
        filters, filter_error = filters_from_query(request.GET, keys=keys), None
    except ValidationError as exc:
        filters, filter_error = Filters(), " ".join(exc.messages)
    context = {
        "dashboard": dashboard,
        "widgets": selectors.dashboard_tiles(dashboard=dashboard),
        "filters": filters,
        "filters_query": filters.querystring(),
        "filter_error": filter_error,
        "can_edit": selectors.can_edit(user=request.user, dashboard=dashboard),
        "version": vega_bundle_version(),
    }
    return render_page_or_partial(request, "dashboards/dashboard_detail.html", context, partial="grid")


@require_http_methods(["GET", "POST"])
@role_required(Role.ANALYST)
def dashboard_edit(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    dashboard = dashboard_or_404(request, pk, edit=True)
    form = DashboardForm(request.POST or None, instance=dashboard)
    if request.method == "POST" and form.is_valid():
        try:
            services.dashboard_update(dashboard=dashboard, user=request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Dashboard saved.")
            return redirect("dashboards:dashboard-detail", dashboard.pk)
    status = INVALID if form.errors else 200
    return render(
        request, "dashboards/dashboard_form.html", {"dashboard": dashboard, "form": form}, status=status
    )


@require_POST
@role_required(Role.ANALYST)
def dashboard_delete(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    dashboard = dashboard_or_404(request, pk, edit=True)
    services.dashboard_delete(dashboard=dashboard, user=request.user)
    messages.success(request, f"“{dashboard.title}” was deleted.")
    return redirect("dashboards:index")


@require_POST
@role_required(Role.ANALYST)
def dashboard_duplicate(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    copy = services.dashboard_duplicate(dashboard=dashboard_or_404(request, pk), user=request.user)
    messages.success(request, "This is your copy: only you can see it until you share it.")
    return redirect("dashboards:dashboard-detail", copy.pk)


@require_POST
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request")
def dashboard_refresh_all(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """Run every widget now; the page then reloads them from the fresh cache."""
    dashboard = dashboard_or_404(request, pk)
    filters = filters_of(QueryDict(request.POST.get("q", "")), dashboard)
    dashboard_refresh(dashboard=dashboard, user=request.user, filters=filters)
    return back_to_grid(request, dashboard, filters)


@require_GET
@role_required(Role.VIEWER)
def dashboard_print(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    dashboard = dashboard_or_404(request, pk)
    filters = filters_of(request.GET, dashboard)
    results = dashboard_results(dashboard=dashboard, filters=filters, user=request.user)
    context = {
        "dashboard": dashboard,
        "results": results,
        "filters": filters,
        "filters_query": filters.querystring(),
    }
    return render(request, "dashboards/print.html", context)


@require_GET
@role_required(Role.VIEWER)
def dashboard_pdf(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    dashboard = dashboard_or_404(request, pk)
    document = exports.dashboard_pdf(
        dashboard=dashboard, filters=filters_of(request.GET, dashboard), user=request.user
    )
    response = HttpResponse(document, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(
        True, f"{slugify(dashboard.title) or 'dashboard'}.pdf"
    )
    return response
