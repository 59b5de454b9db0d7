"""Pinning a chat answer, or a query from the SQL runner, to a dashboard."""

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from apps.accounts.models import Role
from apps.chat.models import ChatMessage
from apps.chat.selectors import message_get
from apps.connections.models import Connection
from apps.connections.selectors import connection_get
from apps.dashboards import selectors
from apps.dashboards.forms import PinForm
from apps.dashboards.services import dashboards as services
from apps.dashboards.views.common import INVALID
from datamind.lib.permissions import role_required
from datamind.lib.types import AuthenticatedRequest


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
