"""One widget: its fragment, editing it (live SQL check, preview), arranging it, its downloads."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from apps.accounts.models import Role
from apps.connections.engines.base import EngineError
from apps.connections.safety import UnsafeSQLError, validate_readonly
from apps.connections.selectors import connection_choices
from apps.dashboards import selectors
from apps.dashboards.forms import LayoutForm, WidgetForm
from apps.dashboards.models import WidgetKind
from apps.dashboards.services import dashboards as services
from apps.dashboards.services import exports
from apps.dashboards.services.widgets import WidgetData, widget_run
from apps.dashboards.views.common import INVALID, back_to_grid, dashboard_or_404, filters_of, widget_or_404
from datamind.lib.permissions import role_required
from datamind.lib.types import AuthenticatedRequest
from datamind.lib.vega import vega_bundle_version


@require_POST
@role_required(Role.ANALYST)
def widget_add(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """A new widget starts as a note; its editor turns it into a chart, table or KPI."""
    dashboard = dashboard_or_404(request, pk, edit=True)
    widget = services.widget_create(
        dashboard=dashboard, user=request.user, title="New widget", kind=WidgetKind.TEXT
    )
    return redirect("dashboards:widget-edit", widget.pk)


@require_POST
@role_required(Role.ANALYST)
@vary_on_headers("HX-Request")
def widget_layout(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """Move a widget (offset: the keyboard's way), resize it (width, height), or put the whole grid
    in a new order (order: the ids after a drag and drop)."""
    widget = widget_or_404(request, pk, edit=True)
    form = LayoutForm(request.POST)
    if not form.is_valid():
        return HttpResponse("That layout change is not available.", status=400)
    if form.cleaned_data["order"]:
        services.widgets_reorder(dashboard=widget.dashboard, order=form.cleaned_data["order"])
    if form.cleaned_data["offset"]:
        services.widget_move(widget=widget, offset=form.cleaned_data["offset"])
    if form.cleaned_data["width"] or form.cleaned_data["height"]:
        services.widget_resize(
            widget=widget, width=form.cleaned_data["width"], height=form.cleaned_data["height"]
        )
    return back_to_grid(
        request, widget.dashboard, filters_of(QueryDict(form.cleaned_data["q"]), widget.dashboard)
    )


@require_GET
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request")
def widget_fragment(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """One widget with its current data: each widget of a page loads through its own request."""
    widget = widget_or_404(request, pk)
    filters = filters_of(request.GET, widget.dashboard)
    data = widget_run(widget=widget, filters=filters, user=request.user)
    context = {
        "widget": widget,
        "data": data,
        "dashboard": widget.dashboard,
        "filters_query": filters.querystring(),
        "can_edit": selectors.can_edit(user=request.user, dashboard=widget.dashboard),
    }
    return render(request, "dashboards/partials/widget.html", context)


@require_http_methods(["GET", "POST"])
@role_required(Role.ANALYST)
def widget_edit(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    widget = widget_or_404(request, pk, edit=True)
    form = WidgetForm(
        request.POST or None,
        initial=WidgetForm.initial_for(widget),
        filter_fields=widget.dashboard.filter_fields,
        connections=connection_choices(org=request.user.org),
    )
    if request.method == "POST" and form.is_valid():
        try:
            services.widget_update(widget=widget, user=request.user, **form.fields_for_service())
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Widget saved.")
            return redirect("dashboards:dashboard-detail", widget.dashboard_id)
    status = INVALID if form.errors else 200
    context = {
        "widget": widget,
        "form": form,
        "columns": selectors.widget_last_columns(widget=widget),
        "version": vega_bundle_version(),
    }
    return render(request, "dashboards/widget_form.html", context, status=status)


@require_POST
@role_required(Role.ANALYST)
def widget_validate(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """Live validation while the SQL is typed: the first lock only, nothing runs or is recorded."""
    widget = widget_or_404(request, pk, edit=True)
    try:
        validate_readonly(
            request.POST.get("sql", ""), widget.connection.dialect if widget.connection else "postgres"
        )
        verdict = {"ok": True}
    except UnsafeSQLError as exc:
        verdict = {"ok": False, "detail": exc.detail}
    return render(request, "dashboards/widget_form.html#sql-verdict", {"verdict": verdict})


@require_POST
@role_required(Role.ANALYST)
def widget_preview(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """The widget as the form would save it, run now, without saving."""
    widget = widget_or_404(request, pk, edit=True)
    form = WidgetForm(
        request.POST,
        filter_fields=widget.dashboard.filter_fields,
        connections=connection_choices(org=request.user.org),
    )
    if not form.is_valid():
        data = WidgetData(widget=widget, error="Fill in the form's required fields first.")
    else:
        for name, value in form.fields_for_service().items():
            setattr(widget, name, value)
        data = widget_run(widget=widget, user=request.user)
    return render(request, "dashboards/widget_form.html#preview", {"data": data, "widget": widget})


@require_POST
@role_required(Role.ANALYST)
def widget_delete(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    widget = widget_or_404(request, pk, edit=True)
    services.widget_delete(widget=widget)
    messages.success(request, f"“{widget.title}” was removed.")
    return redirect("dashboards:dashboard-detail", widget.dashboard_id)


@require_GET
@role_required(Role.VIEWER)
def widget_download(request: AuthenticatedRequest, pk: int, fmt: str) -> HttpResponse:
    """The chart as PNG or SVG (drawn on the server), or the data as CSV or XLSX (every row)."""
    widget = widget_or_404(request, pk)
    filters = filters_of(request.GET, widget.dashboard)
    try:
        if fmt in exports.IMAGE_TYPES:
            image = exports.widget_chart_image(widget=widget, fmt=fmt, filters=filters, user=request.user)
            response = HttpResponse(image, content_type=exports.IMAGE_TYPES[fmt])
            file_name = f"{slugify(widget.title) or 'chart'}.{fmt}"
        else:
            download = exports.widget_data_download(
                widget=widget, fmt=fmt, filters=filters, user=request.user
            )
            response = StreamingHttpResponse(download, content_type=download.content_type)
            file_name = download.file_name
    except ValidationError as exc:
        return _refused(" ".join(exc.messages))
    except (UnsafeSQLError, EngineError) as exc:
        return _refused(exc.detail)
    response["Content-Disposition"] = content_disposition_header(True, file_name)
    return response


def _refused(detail: str) -> HttpResponse:
    return HttpResponse(detail, status=INVALID, content_type="text/plain")
