"""Subscriptions: e-mailing a dashboard on a schedule, and leaving one from the e-mail's link."""

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from apps.accounts.models import Role
from apps.dashboards import selectors
from apps.dashboards.forms import SubscriptionForm
from apps.dashboards.models import Subscription
from apps.dashboards.services import subscriptions as subscription_services
from apps.dashboards.views.common import INVALID, dashboard_or_404
from datamind.lib.permissions import role_required
from datamind.lib.types import AuthenticatedRequest


@require_http_methods(["GET", "POST"])
@role_required(Role.ANALYST)
def subscriptions(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    dashboard = dashboard_or_404(request, pk)
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
    dashboard = dashboard_or_404(request, pk)
    try:
        subscription = selectors.subscription_get(dashboard=dashboard, pk=subscription_pk)
    except Subscription.DoesNotExist:
        raise Http404("No such subscription.")
    if not selectors.can_delete_subscription(user=request.user, subscription=subscription):
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
