"""Keeping dashboards fresh: refreshing every widget, and pushing the new fragments to open pages.

Fragments are rendered once here and sent to the dashboard's channel-layer group; every open
page (on any replica) receives the same HTML and htmx swaps it in by id (`hx-swap-oob`). Only the
widget bodies are pushed: the headers carry each viewer's own controls and stay as they are.
"""

import datetime as dt

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.db import transaction
from django.template.loader import render_to_string
from django.utils import timezone

from apps.accounts.models import User
from apps.dashboards.models import Dashboard
from apps.dashboards.services.filters import Filters
from apps.dashboards.services.widgets import WidgetData, dashboard_results

REFRESHED_EVENT = "dashboard.refreshed"


def dashboard_group(dashboard_id: int) -> str:
    return f"dashboard-{dashboard_id}"


def widget_body_fragment(data: WidgetData, *, filters_query: str = "", oob: bool = False) -> str:
    return render_to_string(
        "dashboards/partials/widget_body.html", {"data": data, "filters_query": filters_query, "oob": oob}
    )


def dashboard_refresh(
    *, dashboard: Dashboard, user: User | None = None, filters: Filters | None = None
) -> list[WidgetData]:
    """Run every widget past the cache, and tell every open page.

    Unfiltered pages get the new widget bodies. A filtered page shows other rows, so it gets an
    element that reloads its grid with its own filters (from the page's filter form).
    """
    filters = filters or Filters()
    results = dashboard_results(dashboard=dashboard, filters=filters, user=user, use_cache=False)
    if not filters.active:
        event = {
            "type": REFRESHED_EVENT,
            "html": "".join(widget_body_fragment(data, oob=True) for data in results),
            "filtered_html": render_to_string(
                "dashboards/partials/grid_reload.html", {"dashboard": dashboard}
            ),
        }
        async_to_sync(get_channel_layer().group_send)(dashboard_group(dashboard.pk), event)
    return results


def dashboards_claim_due(*, at: dt.datetime | None = None) -> list[int]:
    """The ids of dashboards whose background refresh is due, each claimed by moving its next
    time on with a conditional UPDATE: two beat ticks (or two workers) never claim it twice."""
    at = at or timezone.now()
    claimed = []
    due = Dashboard.objects.filter(schedule_minutes__gt=0, next_refresh_at__lte=at).values_list(
        "pk", "next_refresh_at", "schedule_minutes"
    )
    for pk, due_at, minutes in due:
        with transaction.atomic():
            if Dashboard.objects.filter(pk=pk, next_refresh_at=due_at).update(
                next_refresh_at=at + dt.timedelta(minutes=minutes)
            ):
                claimed.append(pk)
    return claimed
