"""The alerts API: alerts, their events, running one now and muting.

Every view calls the services the pages call. An alert is looked up in the caller's org before
any role check: another org's alert is a 404; members read, analysts change their own alerts,
admins any alert of the org.
"""

from datetime import timedelta
from typing import Any

from django.utils.timezone import now
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import SAFE_METHODS
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.alerts import detectors, selectors
from apps.alerts.models import Alert, AlertState, DeliveryStatus, EventState, ScheduleKind
from apps.alerts.services import alerts as alert_services
from apps.alerts.services.channels import channels_public
from apps.connections.models import Connection
from datamind.lib.api import Pagination, error_responses, paginated_response
from datamind.lib.permissions import ReadOrRole

_TAGS = ["alerts"]


class AlertApi(APIView):
    permission_classes = [ReadOrRole]

    def get_alert(self, pk: int) -> Alert:
        try:
            alert = selectors.alert_get(org=self.request.user.org, pk=pk)
        except Alert.DoesNotExist:
            raise exceptions.NotFound()
        if self.request.method not in SAFE_METHODS and not alert_services.alert_can_edit(
            user=self.request.user, alert=alert
        ):
            raise exceptions.PermissionDenied("Only the alert's owner or an admin can change it.")
        return alert


@extend_schema_field(OpenApiTypes.INT)
class ConnectionField(serializers.PrimaryKeyRelatedField):
    """The id of one of the caller's org's connections."""

    def get_queryset(self) -> Any:
        return Connection.objects.filter(org=self.context["request"].user.org)


class AlertInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=120)
    connection = ConnectionField()
    sql = serializers.CharField(help_text="Returns one number, or rows of (timestamp, value).")
    dimension = serializers.CharField(max_length=120, required=False, allow_blank=True)
    condition_kind = serializers.ChoiceField(choices=sorted(detectors.registry()), default="anomaly")
    condition_config = serializers.DictField(
        default=dict,
        help_text="anomaly: sensitivity (low/medium/high or a number), direction (above/below/either);"
        " threshold: threshold, direction; change: amount, unit (percent/absolute), direction,"
        " compare_to (previous/last_week).",
    )
    schedule_kind = serializers.ChoiceField(choices=ScheduleKind.choices, default=ScheduleKind.HOURLY)
    every_minutes = serializers.IntegerField(required=False)
    at_minute = serializers.IntegerField(required=False)
    at_time = serializers.TimeField(required=False)
    cron = serializers.CharField(max_length=100, required=False, allow_blank=True)
    timezone = serializers.CharField(max_length=64, required=False)
    channels = serializers.ListField(
        child=serializers.DictField(),
        required=False,
        help_text='[{"kind": "in_app", "to": "org"|"owner"}, {"kind": "email", "to": ["a@b.c"]},'
        ' {"kind": "webhook", "url": "...", "format": "json"|"slack", "secret": "write-only"}]',
    )
    cooldown_minutes = serializers.IntegerField(min_value=0, required=False)
    is_active = serializers.BooleanField(required=False)

    class Meta:
        ref_name = "AlertSettings"


class AlertOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    owner = serializers.EmailField(source="owner.email")
    connection = serializers.IntegerField(source="connection_id")
    sql = serializers.CharField()
    dimension = serializers.CharField()
    condition_kind = serializers.CharField()
    condition_config = serializers.DictField()
    schedule_kind = serializers.ChoiceField(choices=ScheduleKind.choices)
    every_minutes = serializers.IntegerField()
    at_minute = serializers.IntegerField()
    at_time = serializers.TimeField()
    cron = serializers.CharField()
    timezone = serializers.CharField()
    channels = serializers.SerializerMethodField()
    cooldown_minutes = serializers.IntegerField()
    is_active = serializers.BooleanField()
    muted_until = serializers.DateTimeField(allow_null=True)
    state = serializers.ChoiceField(choices=AlertState.choices)
    last_value = serializers.FloatField(allow_null=True)
    last_evaluated_at = serializers.DateTimeField(allow_null=True)
    next_run_at = serializers.DateTimeField(allow_null=True)
    consecutive_failures = serializers.IntegerField()
    created_at = serializers.DateTimeField()

    class Meta:
        ref_name = "Alert"

    def get_channels(self, alert: Alert) -> list[dict]:
        return channels_public(alert.channels)


class DeliveryOutputSerializer(serializers.Serializer):
    kind = serializers.CharField()
    reason = serializers.CharField()
    target = serializers.CharField()
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    last_error = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "AlertDelivery"


class EventOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    scheduled_for = serializers.DateTimeField()
    evaluated_at = serializers.DateTimeField(allow_null=True)
    state = serializers.ChoiceField(choices=EventState.choices)
    value = serializers.FloatField(allow_null=True)
    expected = serializers.FloatField(allow_null=True)
    band_low = serializers.FloatField(allow_null=True)
    band_high = serializers.FloatField(allow_null=True)
    score = serializers.FloatField(allow_null=True)
    message = serializers.CharField()
    explanation = serializers.CharField()
    deliveries = DeliveryOutputSerializer(many=True)

    class Meta:
        ref_name = "AlertEvent"


class AlertListApi(APIView):
    """The org's alerts (members) and adding one (analysts)."""

    permission_classes = [ReadOrRole]
    pagination_class = Pagination

    @extend_schema(
        tags=_TAGS,
        responses={200: AlertOutputSerializer(many=True), **error_responses(401, 403)},
        summary="List the organisation's alerts",
    )
    def get(self, request: Request) -> Response:
        alerts = selectors.alert_list(org=request.user.org)
        return paginated_response(
            queryset=alerts, serializer_class=AlertOutputSerializer, request=request, view=self
        )

    @extend_schema(
        tags=_TAGS,
        request=AlertInputSerializer,
        responses={201: AlertOutputSerializer, **error_responses(400, 401, 403)},
        summary="Add an alert",
        description="The SQL is checked as read-only, the condition and channels as for the form.",
    )
    def post(self, request: Request) -> Response:
        serializer = AlertInputSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        alert = alert_services.alert_create(owner=request.user, **data)
        return Response(AlertOutputSerializer(alert).data, status=status.HTTP_201_CREATED)


class AlertDetailApi(AlertApi):
    """One alert: members read it; its owner (or an admin) changes or removes it."""

    @extend_schema(
        tags=_TAGS,
        responses={200: AlertOutputSerializer, **error_responses(401, 403, 404)},
        summary="Get an alert",
    )
    def get(self, request: Request, pk: int) -> Response:
        return Response(AlertOutputSerializer(self.get_alert(pk)).data)

    @extend_schema(
        tags=_TAGS,
        request=AlertInputSerializer,
        responses={200: AlertOutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="Replace an alert's settings",
    )
    def put(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=False)

    @extend_schema(
        tags=_TAGS,
        request=AlertInputSerializer,
        responses={200: AlertOutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="Change some of an alert's settings",
    )
    def patch(self, request: Request, pk: int) -> Response:
        return self._update(request, pk, partial=True)

    @extend_schema(
        tags=_TAGS,
        responses={204: OpenApiResponse(description="Removed."), **error_responses(401, 403, 404)},
        summary="Remove an alert",
    )
    def delete(self, request: Request, pk: int) -> Response:
        alert_services.alert_delete(alert=self.get_alert(pk))
        return Response(status=status.HTTP_204_NO_CONTENT)

    def _update(self, request: Request, pk: int, *, partial: bool) -> Response:
        alert = self.get_alert(pk)
        serializer = AlertInputSerializer(data=request.data, partial=partial, context={"request": request})
        serializer.is_valid(raise_exception=True)
        alert = alert_services.alert_update(alert=alert, **serializer.validated_data)
        return Response(AlertOutputSerializer(alert).data)


class AlertEventsApi(AlertApi):
    pagination_class = Pagination

    @extend_schema(
        tags=_TAGS,
        responses={200: EventOutputSerializer(many=True), **error_responses(401, 403, 404)},
        summary="An alert's evaluations, newest first, with their notifications",
    )
    def get(self, request: Request, pk: int) -> Response:
        events = selectors.event_list(alert=self.get_alert(pk))
        return paginated_response(
            queryset=events, serializer_class=EventOutputSerializer, request=request, view=self
        )


class AlertEvaluateApi(AlertApi):
    @extend_schema(
        tags=_TAGS,
        request=None,
        responses={200: EventOutputSerializer, **error_responses(401, 403, 404)},
        summary="Evaluate an alert now",
        description="Runs the query and the condition now, as its own event (notifying as a"
        " scheduled run would); a failing query answers 200 with the event in state `error`.",
    )
    def post(self, request: Request, pk: int) -> Response:
        event = alert_services.alert_run_now(alert=self.get_alert(pk))
        return Response(EventOutputSerializer(event).data)


class AlertMuteApi(AlertApi):
    class InputSerializer(serializers.Serializer):
        hours = serializers.IntegerField(min_value=0, max_value=24 * 30, help_text="0 unmutes.")

        class Meta:
            ref_name = "AlertMute"

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={200: AlertOutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="Mute (snooze) an alert's notifications for some hours",
        description="It is still evaluated and its history kept; `hours` 0 unmutes.",
    )
    def post(self, request: Request, pk: int) -> Response:
        alert = self.get_alert(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        hours = serializer.validated_data["hours"]
        alert = alert_services.alert_mute(
            alert=alert, until=now() + timedelta(hours=hours) if hours else None
        )
        return Response(AlertOutputSerializer(alert).data)
