from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from apps.accounts import urls as accounts_urls
from apps.alerts import urls as alerts_urls
from apps.billing import urls as billing_urls
from apps.chat import urls as chat_urls
from apps.connections import urls as connections_urls
from apps.dashboards import urls as dashboards_urls
from datamind import health

api_v1 = [
    path("", include((accounts_urls.api_urlpatterns, "accounts"), namespace="accounts-api")),
    path("", include((connections_urls.api_urlpatterns, "connections"), namespace="connections-api")),
    path("", include((chat_urls.api_urlpatterns, "chat"), namespace="chat-api")),
    path("", include((billing_urls.api_urlpatterns, "billing"), namespace="billing-api")),
    path("", include((dashboards_urls.api_urlpatterns, "dashboards"), namespace="dashboards-api")),
    path("", include((alerts_urls.api_urlpatterns, "alerts"), namespace="alerts-api")),
]

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="chat:index"), name="home"),
    path("", include("apps.accounts.urls")),
    path("chat/", include("apps.chat.urls")),
    path("connections/", include("apps.connections.urls")),
    path("dashboards/", include("apps.dashboards.urls")),
    path("alerts/", include("apps.alerts.urls")),
    path("usage/", include("apps.billing.urls")),
    path("health/", health.health_view, name="health"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves Swagger UI's start-up script as a file (no inline script for the CSP);
    # the page keeps one small inline <style> of drf-spectacular's template.
    path(
        "api/docs/",
        csp_update({"style-src": [UNSAFE_INLINE]})(
            SpectacularSwaggerSplitView.as_view(url_name="api-schema")
        ),
        name="api-docs",
    ),
]

handler404 = "datamind.lib.api.handler404"
handler500 = "datamind.lib.api.handler500"
