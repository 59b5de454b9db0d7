"""Dashboard pages: the list, one dashboard with its widgets (each loaded by its own request),
pinning, editing widgets and the layout, refresh, exports and subscriptions.

Viewers open their own and org-visible dashboards; analysts also pin and edit their own; admins
edit every dashboard they see. Another org's dashboard, or a colleague's private one, is a 404.
"""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse, QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from apps.accounts.models import Role
from apps.chat.models import ChatMessage
from apps.chat.selectors import message_get
from apps.connections.engines.base import EngineError
from apps.connections.models import Connection
from apps.connections.safety import UnsafeSQLError, validate_readonly
from apps.connections.selectors import connection_get
from apps.dashboards import selectors
from apps.dashboards.forms import DashboardForm, LayoutForm, PinForm, SubscriptionForm, WidgetForm
from apps.dashboards.models import Dashboard, Subscription, Widget
from apps.dashboards.services import dashboards as services
from apps.dashboards.services import exports
from apps.dashboards.services import subscriptions as subscription_services
from apps.dashboards.services.filters import Filters, filters_from_query
from apps.dashboards.services.refresh import dashboard_refresh
from apps.dashboards.services.widgets import WidgetData, dashboard_results, widget_run
from datamind.lib.htmx import render_page_or_partial
from datamind.lib.permissions import role_required
from datamind.lib.types import AuthenticatedRequest
from datamind.lib.vega import vega_bundle_version

INVALID = 422


def _dashboard_or_404(request: AuthenticatedRequest, pk: int, *, edit: bool = False) -> Dashboard:
    try:
        dashboard = selectors.dashboard_get(org=request.user.org, user=request.user, pk=pk)
    except Dashboard.DoesNotExist:
        raise Http404("No such dashboard.")
    if edit and not selectors.can_edit(user=request.user, dashboard=dashboard):
        raise PermissionDenied("Only the dashboard's owner, or an admin, can change it.")
    return dashboard


def _widget_or_404(request: AuthenticatedRequest, pk: int, *, edit: bool = False) -> Widget:
    try:
        widget = selectors.widget_get(org=request.user.org, user=request.user, pk=pk)
    except Widget.DoesNotExist:
        raise Http404("No such widget.")
    if edit and not selectors.can_edit(user=request.user, dashboard=widget.dashboard):
        raise PermissionDenied("Only the dashboard's owner, or an admin, can change it.")
    return widget


def _filters(query: QueryDict, dashboard: Dashboard) -> Filters:
    try:
        return filters_from_query(query, keys=[f["key"] for f in dashboard.filter_fields])
    except ValidationError:
        return Filters()


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
    dashboard = _dashboard_or_404(request, pk)
    keys = [f["key"] for f in dashboard.filter_fields]
    try:
        filters, filter_error = filters_from_query(request.GET, keys=keys), None
    except ValidationError as exc:
        filters, filter_error = Filters(), " ".join(exc.messages)
    context = {
        "dashboard": dashboard,
        "widgets": selectors.dashboard_widgets(dashboard=dashboard),
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
    dashboard = _dashboard_or_404(request, pk, edit=True)
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
    dashboard = _dashboard_or_404(request, pk, edit=True)
    services.dashboard_delete(dashboard=dashboard, user=request.user)
    messages.success(request, f"“{dashboard.title}” was deleted.")
    return redirect("dashboards:index")


@require_POST
@role_required(Role.ANALYST)
def dashboard_duplicate(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    copy = services.dashboard_duplicate(dashboard=_dashboard_or_404(request, pk), user=request.user)
    messages.success(request, "This is your copy: only you can see it until you share it.")
    return redirect("dashboards:dashboard-detail", copy.pk)


@require_POST
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request")
def dashboard_refresh_all(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """Run every widget now; the page then reloads them from the fresh cache."""
    dashboard = _dashboard_or_404(request, pk)
    filters = _filters(QueryDict(request.POST.get("q", "")), dashboard)
    dashboard_refresh(dashboard=dashboard, user=request.user, filters=filters)
    return _back_to_grid(request, dashboard, filters)


def _back_to_grid(request: AuthenticatedRequest, dashboard: Dashboard, filters: Filters) -> HttpResponse:
    if request.htmx:
        context = {
            "dashboard": dashboard,
            "widgets": selectors.dashboard_widgets(dashboard=dashboard),
            "filters_query": filters.querystring(),
            "can_edit": selectors.can_edit(user=request.user, dashboard=dashboard),
        }
        return render(request, "dashboards/dashboard_detail.html#grid", context)
    url = reverse("dashboards:dashboard-detail", args=[dashboard.pk])
    return redirect(f"{url}?{filters.querystring()}" if filters.active else url)


@require_POST
@role_required(Role.ANALYST)
@vary_on_headers("HX-Request")
def dashboard_reorder(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    dashboard = _dashboard_or_404(request, pk, edit=True)
    form = LayoutForm(request.POST)
    if not form.is_valid():
        return HttpResponse(" ".join(form.errors.get("order", [])), status=400)
    services.widgets_reorder(dashboard=dashboard, order=form.cleaned_data["order"])
    return HttpResponse(status=204)


@require_POST
@role_required(Role.ANALYST)
@vary_on_headers("HX-Request")
def widget_layout(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """Move a widget (offset) or resize it (width, height): the keyboard's way to arrange."""
    widget = _widget_or_404(request, pk, edit=True)
    form = LayoutForm(request.POST)
    if not form.is_valid():
        return HttpResponse("That layout change is not available.", status=400)
    if form.cleaned_data["offset"]:
        services.widget_move(widget=widget, offset=form.cleaned_data["offset"])
    if form.cleaned_data["width"] or form.cleaned_data["height"]:
        services.widget_resize(
            widget=widget, width=form.cleaned_data["width"], height=form.cleaned_data["height"]
        )
    return _back_to_grid(
        request, widget.dashboard, _filters(QueryDict(form.cleaned_data["q"]), widget.dashboard)
    )


@require_GET
@role_required(Role.VIEWER)
@vary_on_headers("HX-Request")
def widget_fragment(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """One widget with its current data: each widget of a page loads through its own request."""
    widget = _widget_or_404(request, pk)
    filters = _filters(request.GET, widget.dashboard)
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
    widget = _widget_or_404(request, pk, edit=True)
    form = WidgetForm(
        request.POST or None,
        initial=WidgetForm.initial_for(widget),
        filter_fields=widget.dashboard.filter_fields,
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
    context = {"widget": widget, "form": form, "version": vega_bundle_version()}
    return render(request, "dashboards/widget_form.html", context, status=status)


@require_POST
@role_required(Role.ANALYST)
def widget_validate(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """Live validation while the SQL is typed: the first lock only, nothing runs or is recorded."""
    widget = _widget_or_404(request, pk, edit=True)
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
    widget = _widget_or_404(request, pk, edit=True)
    form = WidgetForm(request.POST, filter_fields=widget.dashboard.filter_fields)
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
    widget = _widget_or_404(request, pk, edit=True)
    services.widget_delete(widget=widget)
    messages.success(request, f"“{widget.title}” was removed.")
    return redirect("dashboards:dashboard-detail", widget.dashboard_id)


def _pin_source(
    request: AuthenticatedRequest, data: QueryDict, message_pk: int | None
) -> tuple[ChatMessage | None, Connection, str]:
    """What is being pinned: one of the person's chat answers, or SQL on one of the org's connections."""
    try:
        if message_pk or data.get("message"):
            message = message_get(
                org=request.user.org, user=request.user, pk=message_pk or int(data["message"])
            )
            if message.session.connection is None or not message.sql:
                raise Http404("This answer has no query to pin.")
            return message, message.session.connection, message.sql
        return (
            None,
            connection_get(org=request.user.org, pk=int(data.get("connection", ""))),
            data.get("sql", ""),
        )
    except (ChatMessage.DoesNotExist, Connection.DoesNotExist, ValueError):
        raise Http404("Nothing to pin.")


@require_http_methods(["GET", "POST"])
@role_required(Role.ANALYST)
def pin(request: AuthenticatedRequest, message_pk: int | None = None) -> HttpResponse:
    data = request.POST if request.method == "POST" else request.GET
    message, connection, sql = _pin_source(request, data, message_pk)
    dashboards = selectors.editable_dashboards(org=request.user.org, user=request.user)
    initial = {
        "message": message.pk if message else None,
        "connection": connection.pk,
        "sql": sql,
        "title": selectors.question_of(message=message)[:200] if message else "",
    }
    form = PinForm(request.POST or None, initial=initial, dashboards=dashboards)
    if request.method == "POST" and form.is_valid():
        choices = {k: form.cleaned_data[k] for k in ("dashboard", "new_dashboard_title", "title", "kind")}
        try:
            if message is not None:
                widget = services.widget_pin_answer(
                    user=request.user, message=message, mark=form.cleaned_data["mark"], **choices
                )
            else:
                chart = {"mark": form.cleaned_data["mark"] or "bar"}
                widget = services.widget_pin(
                    user=request.user, connection=connection, sql=sql, chart=chart, **choices
                )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, f"Pinned to “{widget.dashboard.title}”.")
            return redirect("dashboards:dashboard-detail", widget.dashboard_id)
    context = {"form": form, "message": message, "connection": connection, "sql": sql}
    return render(request, "dashboards/pin.html", context, status=INVALID if form.errors else 200)


@require_GET
@role_required(Role.VIEWER)
def widget_chart(request: AuthenticatedRequest, pk: int, fmt: str) -> HttpResponse:
    widget = _widget_or_404(request, pk)
    filters = _filters(request.GET, widget.dashboard)
    try:
        image = exports.widget_chart_image(widget=widget, fmt=fmt, filters=filters, user=request.user)
    except ValidationError as exc:
        return HttpResponse(" ".join(exc.messages), status=INVALID, content_type="text/plain")
    response = HttpResponse(image, content_type=exports.IMAGE_TYPES[fmt])
    response["Content-Disposition"] = content_disposition_header(
        True, f"{slugify(widget.title) or 'chart'}.{fmt}"
    )
    return response


@require_GET
@role_required(Role.VIEWER)
def widget_data(request: AuthenticatedRequest, pk: int, fmt: str) -> HttpResponse:
    widget = _widget_or_404(request, pk)
    filters = _filters(request.GET, widget.dashboard)
    try:
        download = exports.widget_data_download(widget=widget, fmt=fmt, filters=filters, user=request.user)
    except (ValidationError, UnsafeSQLError, EngineError) as exc:
        detail = " ".join(exc.messages) if isinstance(exc, ValidationError) else exc.detail
        return HttpResponse(detail, status=INVALID, content_type="text/plain")
    response = StreamingHttpResponse(download, content_type=download.content_type)
    response["Content-Disposition"] = content_disposition_header(True, download.file_name)
    return response


@require_GET
@role_required(Role.VIEWER)
def dashboard_print(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    dashboard = _dashboard_or_404(request, pk)
    filters = _filters(request.GET, dashboard)
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
    dashboard = _dashboard_or_404(request, pk)
    document = exports.dashboard_pdf(
        dashboard=dashboard, filters=_filters(request.GET, dashboard), user=request.user
    )
    response = HttpResponse(document, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(
        True, f"{slugify(dashboard.title) or 'dashboard'}.pdf"
    )
    return response


@require_http_methods(["GET", "POST"])
@role_required(Role.ANALYST)
def subscriptions(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    dashboard = _dashboard_or_404(request, pk)
    form = SubscriptionForm(request.POST or None, initial={"recipients": request.user.email})
    if request.method == "POST" and form.is_valid():
        try:
            subscription_services.subscription_create(
                dashboard=dashboard, user=request.user, **form.fields_for_service()
            )
        except ValidationError as exc:
            form.add_error(None, exc)
        else:
            messages.success(request, "Subscription saved.")
            return redirect("dashboards:subscriptions", dashboard.pk)
    context = {
        "dashboard": dashboard,
        "subscriptions": selectors.subscription_list(dashboard=dashboard),
        "form": form,
        "timezone": dashboard.org.timezone,
    }
    return render(request, "dashboards/subscriptions.html", context, status=INVALID if form.errors else 200)


@require_POST
@role_required(Role.ANALYST)
def subscription_delete(request: AuthenticatedRequest, pk: int, subscription_pk: int) -> HttpResponse:
    dashboard = _dashboard_or_404(request, pk)
    try:
        subscription = selectors.subscription_get(dashboard=dashboard, pk=subscription_pk)
    except Subscription.DoesNotExist:
        raise Http404("No such subscription.")
    if subscription.created_by_id != request.user.pk and not request.user.is_org_admin:
        raise PermissionDenied("Only whoever made this subscription, or an admin, can delete it.")
    subscription_services.subscription_delete(subscription=subscription, user=request.user)
    messages.success(request, "Subscription deleted.")
    return redirect("dashboards:subscriptions", dashboard.pk)


@require_http_methods(["GET", "POST"])
def unsubscribe(request: HttpRequest, token: str) -> HttpResponse:
    """From an e-mail link, no log-in needed: the signed token names the subscription and address.
    GET asks for confirmation (mail scanners follow links); POST unsubscribes."""
    if request.method == "GET":
        return render(request, "dashboards/unsubscribe.html", {"token": token})
    try:
        subscription, address = subscription_services.subscription_unsubscribe(token=token)
    except ValidationError as exc:
        return render(request, "dashboards/unsubscribe.html", {"error": " ".join(exc.messages)}, status=400)
    return render(
        request,
        "dashboards/unsubscribe.html",
        {"done": True, "subscription": subscription, "address": address},
    )
