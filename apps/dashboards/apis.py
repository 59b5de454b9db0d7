"""The dashboards API: dashboards, their widgets, refreshing, a widget's data and chart images,
and the dashboard's e-mail subscriptions.

The same services and selectors as the pages: a dashboard is looked up among those the caller
may open *before* any role is checked, so another org's dashboard (or a colleague's private one)
is a 404; editing needs an analyst who owns it, or an admin.
"""

from django.core.exceptions import ValidationError
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.connections.models import Connection
from apps.connections.selectors import connection_get
from apps.dashboards import selectors
from apps.dashboards.models import (
    AttachmentFormat,
    Dashboard,
    DeliveryStatus,
    Subscription,
    Visibility,
    Widget,
    WidgetKind,
)
from apps.dashboards.services import dashboards as services
from apps.dashboards.services import subscriptions as subscription_services
from apps.dashboards.services.exports import IMAGE_TYPES, widget_chart_image
from apps.dashboards.services.filters import MAX_VALUE_FILTERS, Filters, filters_from_query
from apps.dashboards.services.refresh import dashboard_refresh
from apps.dashboards.services.widgets import widget_run
from datamind.lib.api import Pagination, error_responses, paginated_response
from datamind.lib.permissions import IsAnalyst, IsMember, ReadOrRole

_TAGS = ["dashboards"]
_EDIT_DENIED = "Only the dashboard's owner, or an admin, can change it."
_SUBSCRIPTION_DELETE_DENIED = "Only whoever made this subscription, or an admin, can delete it."
_FILTER_PARAMETERS = [
    OpenApiParameter("date_from", OpenApiTypes.DATE, description="Keep rows on or after this day."),
    OpenApiParameter("date_to", OpenApiTypes.DATE, description="Keep rows on or before this day."),
    OpenApiParameter(
        "f_<key>",
        OpenApiTypes.STR,
        description=f"A value filter of the dashboard (up to {MAX_VALUE_FILTERS}), e.g. `f_region=Europe`.",
    ),
]


class DashboardApi(APIView):
    permission_classes = [ReadOrRole]

    def get_dashboard(self, pk: int, *, edit: bool = False) -> Dashboard:
        try:
            dashboard = selectors.dashboard_get(org=self.request.user.org_id, user=self.request.user, pk=pk)
        except Dashboard.DoesNotExist:
            raise exceptions.NotFound()
        if edit and not selectors.can_edit(user=self.request.user, dashboard=dashboard):
            raise exceptions.PermissionDenied(_EDIT_DENIED)
        return dashboard

    def get_widget(self, pk: int, *, dashboard: Dashboard | None = None) -> Widget:
        try:
            widget = selectors.widget_get(org=self.request.user.org_id, user=self.request.user, pk=pk)
        except Widget.DoesNotExist:
            raise exceptions.NotFound()
        if dashboard is not None and widget.dashboard_id != dashboard.pk:
            raise exceptions.NotFound()
        return widget


class FilterFieldSerializer(serializers.Serializer):
    key = serializers.CharField(max_length=40)
    label = serializers.CharField(max_length=60, required=False)


class DashboardListApi(DashboardApi):
    """The dashboards the caller may open (members), and making one (analysts)."""

    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=200)
        description = serializers.CharField(default="", allow_blank=True)
        visibility = serializers.ChoiceField(choices=Visibility.choices, default=Visibility.PRIVATE)
        filter_fields = FilterFieldSerializer(many=True, default=list)
        auto_refresh_s = serializers.IntegerField(min_value=0, default=0)
        schedule_minutes = serializers.IntegerField(min_value=0, default=0)

        class Meta:
            ref_name = "DashboardSettings"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        title = serializers.CharField()
        description = serializers.CharField()
        visibility = serializers.ChoiceField(choices=Visibility.choices)
        owner = serializers.EmailField(source="owner.email", allow_null=True)
        filter_fields = FilterFieldSerializer(many=True)
        auto_refresh_s = serializers.IntegerField()
        schedule_minutes = serializers.IntegerField()
        next_refresh_at = serializers.DateTimeField(allow_null=True)
        created_at = serializers.DateTimeField()
        updated_at = serializers.DateTimeField()

        class Meta:
            ref_name = "Dashboard"

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer(many=True), **error_responses(401, 403)},
        summary="List dashboards",
    )
    def get(self, request: Request) -> Response:
        dashboards = selectors.dashboard_list(org=request.user.org, user=request.user)
        return paginated_response(
            queryset=dashboards, serializer_class=self.OutputSerializer, request=request, view=self
        )

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400, 401, 403)},
        summary="Create a dashboard",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        dashboard = services.dashboard_create(
            org=request.user.org, owner=request.user, **serializer.validated_data
        )
        return Response(self.OutputSerializer(dashboard).data, status=status.HTTP_201_CREATED)


class DashboardDetailApi(DashboardApi):
    InputSerializer = DashboardListApi.InputSerializer
    OutputSerializer = DashboardListApi.OutputSerializer

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer, **error_responses(401, 403, 404)},
        summary="Get a dashboard",
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(self.OutputSerializer(self.get_dashboard(pk)).data)

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="Replace a dashboard's settings",
    )
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="Change some of a dashboard's settings",
    )
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    @extend_schema(
        tags=_TAGS,
        responses={204: OpenApiResponse(description="Deleted."), **error_responses(401, 403, 404)},
        summary="Delete a dashboard",
    )
    def delete(self, request: Request, pk: int) -> Response:
        services.dashboard_delete(dashboard=self.get_dashboard(pk, edit=True), user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, pk: int, *, partial: bool) -> Response:
        dashboard = self.get_dashboard(pk, edit=True)
        serializer = self.InputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        dashboard = services.dashboard_update(
            dashboard=dashboard, user=request.user, **serializer.validated_data
        )
        return Response(self.OutputSerializer(dashboard).data)


class WidgetSerializers:
    class InputSerializer(serializers.Serializer):
        title = serializers.CharField(max_length=200)
        kind = serializers.ChoiceField(choices=WidgetKind.choices, default=WidgetKind.CHART)
        connection = serializers.IntegerField(required=False, allow_null=True, help_text="A connection's id.")
        sql = serializers.CharField(default="", allow_blank=True, trim_whitespace=False)
        text = serializers.CharField(default="", allow_blank=True)
        chart = serializers.DictField(default=dict, help_text='{"mark", "x", "y", "color", "aggregate"}')
        filter_columns = serializers.DictField(
            child=serializers.CharField(),
            default=dict,
            help_text='Filter key ("date" or a value filter) to column.',
        )
        width = serializers.ChoiceField(choices=Widget.WIDTHS, default=6)
        height = serializers.ChoiceField(choices=Widget.HEIGHTS, default=1)
        refresh_interval_s = serializers.IntegerField(min_value=0, default=0)

        class Meta:
            ref_name = "WidgetSettings"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        dashboard = serializers.IntegerField(source="dashboard_id")
        title = serializers.CharField()
        kind = serializers.ChoiceField(choices=WidgetKind.choices)
        connection = serializers.IntegerField(source="connection_id", allow_null=True)
        sql = serializers.CharField()
        text = serializers.CharField()
        chart = serializers.DictField()
        filter_columns = serializers.DictField()
        position = serializers.IntegerField()
        width = serializers.IntegerField()
        height = serializers.IntegerField()
        refresh_interval_s = serializers.IntegerField()
        refreshed_at = serializers.DateTimeField(allow_null=True)
        last_error = serializers.CharField()

        class Meta:
            ref_name = "Widget"


def _widget_fields(request: Request, data: dict) -> dict:
    if "connection" in data:
        try:
            data["connection"] = (
                connection_get(org=request.user.org, pk=data["connection"]) if data["connection"] else None
            )
        except Connection.DoesNotExist:
            raise exceptions.ValidationError({"connection": ["No such connection in your organisation."]})
    return data


class WidgetListApi(DashboardApi):
    InputSerializer = WidgetSerializers.InputSerializer
    OutputSerializer = WidgetSerializers.OutputSerializer

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer(many=True), **error_responses(401, 403, 404)},
        summary="List a dashboard's widgets",
    )
    def get(self, request: Request, pk: int) -> Response:
        widgets = selectors.dashboard_widgets(dashboard=self.get_dashboard(pk))
        return Response(self.OutputSerializer(widgets, many=True).data)

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="Add a widget",
        description="Its SQL must be one read-only query, checked by the same safety engine as every query.",
    )
    def post(self, request: Request, pk: int) -> Response:
        dashboard = self.get_dashboard(pk, edit=True)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        fields = _widget_fields(request, dict(serializer.validated_data))
        widget = services.widget_create(dashboard=dashboard, user=request.user, **fields)
        return Response(self.OutputSerializer(widget).data, status=status.HTTP_201_CREATED)


class WidgetDetailApi(DashboardApi):
    InputSerializer = WidgetSerializers.InputSerializer
    OutputSerializer = WidgetSerializers.OutputSerializer

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer, **error_responses(401, 403, 404)},
        summary="Get a widget",
    )
    def get(self, request: Request, pk: int, widget_pk: int) -> Response:
        return Response(
            self.OutputSerializer(self.get_widget(widget_pk, dashboard=self.get_dashboard(pk))).data
        )

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="Replace a widget",
    )
    def put(self, request: Request, pk: int, widget_pk: int) -> Response:
        return self._update(request, pk, widget_pk, partial=False)

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="Change some of a widget",
    )
    def patch(self, request: Request, pk: int, widget_pk: int) -> Response:
        return self._update(request, pk, widget_pk, partial=True)

    @extend_schema(
        tags=_TAGS,
        responses={204: OpenApiResponse(description="Removed."), **error_responses(401, 403, 404)},
        summary="Remove a widget",
    )
    def delete(self, request: Request, pk: int, widget_pk: int) -> Response:
        widget = self.get_widget(widget_pk, dashboard=self.get_dashboard(pk, edit=True))
        services.widget_delete(widget=widget)
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, pk: int, widget_pk: int, *, partial: bool) -> Response:
        widget = self.get_widget(widget_pk, dashboard=self.get_dashboard(pk, edit=True))
        serializer = self.InputSerializer(data=request.data, partial=partial)
        serializer.is_valid(raise_exception=True)
        fields = _widget_fields(request, dict(serializer.validated_data))
        widget = services.widget_update(widget=widget, user=request.user, **fields)
        return Response(self.OutputSerializer(widget).data)


class WidgetDataSerializer(serializers.Serializer):
    widget = serializers.IntegerField(source="widget.pk")
    columns = serializers.ListField(child=serializers.DictField())
    rows = serializers.ListField(child=serializers.ListField())
    row_count = serializers.IntegerField()
    truncated = serializers.BooleanField()
    cached = serializers.BooleanField()
    error = serializers.CharField(help_text="Why the widget could not load; empty when it did.")
    retryable = serializers.BooleanField()
    refreshed_at = serializers.DateTimeField(allow_null=True)
    kpi = serializers.DictField(allow_null=True)

    class Meta:
        ref_name = "WidgetData"


class DashboardRefreshApi(DashboardApi):
    permission_classes = [IsMember]

    @extend_schema(
        tags=_TAGS,
        request=None,
        responses={200: WidgetDataSerializer(many=True), **error_responses(401, 403, 404)},
        summary="Refresh every widget now",
        description="Past the results cache; open dashboard pages receive the new widgets at once.",
    )
    def post(self, request: Request, pk: int) -> Response:
        results = dashboard_refresh(dashboard=self.get_dashboard(pk), user=request.user)
        return Response(WidgetDataSerializer(results, many=True).data)


def _filters(request: Request, widget: Widget) -> Filters:
    try:
        return filters_from_query(
            request.query_params, keys=[f["key"] for f in widget.dashboard.filter_fields]
        )
    except ValidationError as exc:
        raise exceptions.ValidationError(exc.message_dict)


class WidgetDataApi(DashboardApi):
    @extend_schema(
        tags=_TAGS,
        parameters=_FILTER_PARAMETERS,
        responses={200: WidgetDataSerializer, **error_responses(400, 401, 403, 404)},
        summary="A widget's data",
        description="From the results cache while it is fresh. A failing query answers 200 with `error`.",
    )
    def get(self, request: Request, pk: int) -> Response:
        widget = self.get_widget(pk)
        data = widget_run(widget=widget, filters=_filters(request, widget), user=request.user)
        return Response(WidgetDataSerializer(data).data)


class WidgetChartApi(DashboardApi):
    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple:
        # A client asking for the image (Accept: image/png) gets it, and its errors in JSON.
        return super().perform_content_negotiation(request, force=True)

    @extend_schema(
        tags=_TAGS,
        parameters=_FILTER_PARAMETERS,
        responses={
            (200, "image/png"): OpenApiResponse(OpenApiTypes.BINARY, description="The chart as PNG."),
            (200, "image/svg+xml"): OpenApiResponse(OpenApiTypes.BINARY, description="The chart as SVG."),
            **error_responses(400, 401, 403, 404),
        },
        summary="A chart widget as an image",
        description="Drawn on the server from the widget's Vega-Lite spec (`.png` or `.svg`).",
    )
    def get(self, request: Request, pk: int, fmt: str) -> HttpResponse:
        widget = self.get_widget(pk)
        image = widget_chart_image(
            widget=widget, fmt=fmt, filters=_filters(request, widget), user=request.user
        )
        return HttpResponse(image, content_type=IMAGE_TYPES[fmt])


class DeliverySerializer(serializers.Serializer):
    scheduled_for = serializers.DateTimeField()
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    note = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "SubscriptionDelivery"


class SubscriptionSerializers:
    class InputSerializer(serializers.Serializer):
        cron = serializers.CharField(
            max_length=100,
            help_text=(
                "minute hour day-of-month month day-of-week, in the organisation's time zone: "
                "`0 8 * * *` every day at 08:00, `0 8 * * 1` on Mondays."
            ),
        )
        recipients = serializers.ListField(
            child=serializers.CharField(max_length=254),
            max_length=subscription_services.MAX_RECIPIENTS,
            help_text="Members of the organisation, or addresses an admin allows.",
        )
        attachment_format = serializers.ChoiceField(
            choices=AttachmentFormat.choices, default=AttachmentFormat.CSV
        )
        skip_on_failure = serializers.BooleanField(
            default=False, help_text="Skip the e-mail when a widget fails (otherwise it says so)."
        )

        class Meta:
            ref_name = "SubscriptionSettings"

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        dashboard = serializers.IntegerField(source="dashboard_id")
        cron = serializers.CharField()
        timezone = serializers.CharField(source="dashboard.org.timezone")
        recipients = serializers.ListField(child=serializers.EmailField())
        unsubscribed = serializers.ListField(child=serializers.EmailField())
        attachment_format = serializers.ChoiceField(choices=AttachmentFormat.choices)
        skip_on_failure = serializers.BooleanField()
        next_run_at = serializers.DateTimeField(allow_null=True)
        created_by = serializers.EmailField(source="created_by.email", allow_null=True)
        created_at = serializers.DateTimeField()
        last_delivery = serializers.SerializerMethodField()

        class Meta:
            ref_name = "Subscription"

        @extend_schema_field(DeliverySerializer(allow_null=True))
        def get_last_delivery(self, subscription: Subscription) -> dict | None:
            latest = subscription.latest_deliveries  # the selectors' prefetch
            return DeliverySerializer(latest[0]).data if latest else None


class SubscriptionApi(DashboardApi):
    """Analysts and admins: a subscription e-mails recipients, whose addresses only they see."""

    permission_classes = [IsAnalyst]

    def get_subscription(self, pk: int, subscription_pk: int) -> Subscription:
        try:
            return selectors.subscription_get(dashboard=self.get_dashboard(pk), pk=subscription_pk)
        except Subscription.DoesNotExist:
            raise exceptions.NotFound()


class SubscriptionListApi(SubscriptionApi):
    InputSerializer = SubscriptionSerializers.InputSerializer
    OutputSerializer = SubscriptionSerializers.OutputSerializer

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer(many=True), **error_responses(401, 403, 404)},
        summary="List a dashboard's e-mail subscriptions",
    )
    def get(self, request: Request, pk: int) -> Response:
        subscriptions = selectors.subscription_list(dashboard=self.get_dashboard(pk))
        return Response(self.OutputSerializer(subscriptions, many=True).data)

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={201: OutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="E-mail a dashboard on a schedule",
        description="Its charts as PNG and each widget's data as CSV or XLSX, with a link back.",
    )
    def post(self, request: Request, pk: int) -> Response:
        dashboard = self.get_dashboard(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        created = subscription_services.subscription_create(
            dashboard=dashboard, user=request.user, **serializer.validated_data
        )
        subscription = selectors.subscription_get(dashboard=dashboard, pk=created.pk)
        return Response(self.OutputSerializer(subscription).data, status=status.HTTP_201_CREATED)


class SubscriptionDetailApi(SubscriptionApi):
    OutputSerializer = SubscriptionSerializers.OutputSerializer

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer, **error_responses(401, 403, 404)},
        summary="Get a subscription",
    )
    def get(self, request: Request, pk: int, subscription_pk: int) -> Response:
        return Response(self.OutputSerializer(self.get_subscription(pk, subscription_pk)).data)

    @extend_schema(
        tags=_TAGS,
        responses={204: OpenApiResponse(description="Deleted."), **error_responses(401, 403, 404)},
        summary="Delete a subscription",
    )
    def delete(self, request: Request, pk: int, subscription_pk: int) -> Response:
        subscription = self.get_subscription(pk, subscription_pk)
        if not selectors.can_delete_subscription(user=request.user, subscription=subscription):
            raise exceptions.PermissionDenied(_SUBSCRIPTION_DELETE_DENIED)
        subscription_services.subscription_delete(subscription=subscription, user=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
