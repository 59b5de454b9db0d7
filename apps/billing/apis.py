"""The billing API: where the org's month stands, and its budget settings (admins change them).

The same selectors and services as the Usage page, so an API change is audited like a page one.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.accounts.models import Plan, Role
from apps.billing import selectors
from apps.billing.forms import PERIOD_FORMAT, PERIOD_INVALID
from apps.billing.models import BudgetPeriod
from apps.billing.services import (
    budget_period_current,
    budget_period_of_month,
    budget_standing,
    budget_update,
)
from datamind.lib.api import error_responses
from datamind.lib.permissions import IsMember, ReadOrRole

_TAGS = ["billing"]


class MembersReadAdminsWrite(ReadOrRole):
    write_minimum = Role.ADMIN


class UsageDaySerializer(serializers.Serializer):
    day = serializers.DateField()
    calls = serializers.IntegerField()
    input_tokens = serializers.IntegerField()
    output_tokens = serializers.IntegerField()
    total_tokens = serializers.IntegerField()
    cost = serializers.DecimalField(max_digits=12, decimal_places=6)

    class Meta:
        ref_name = "UsageDay"


class UsageApi(APIView):
    """One period's budget and usage, with a daily series (the org's local days)."""

    permission_classes = [IsMember]

    class InputSerializer(serializers.Serializer):
        period = serializers.DateField(
            input_formats=[PERIOD_FORMAT],
            required=False,
            error_messages={"invalid": PERIOD_INVALID},
            help_text="The month, as YYYY-MM; this month if omitted.",
        )

        class Meta:
            ref_name = "UsageInput"

    class OutputSerializer(serializers.Serializer):
        period_start = serializers.DateField()
        resets_on = serializers.DateField(
            help_text="The next period's first day (the day this one's budget reset), in the org's time zone."
        )
        is_current = serializers.BooleanField(help_text="Whether this is the period running now.")
        timezone = serializers.CharField()
        budget = serializers.IntegerField(help_text="Tokens allowed this period.")
        used = serializers.IntegerField()
        reserved = serializers.IntegerField(help_text="Tokens held by questions being answered now.")
        remaining = serializers.IntegerField()
        percent_used = serializers.FloatField()
        calls = serializers.IntegerField()
        input_tokens = serializers.IntegerField()
        output_tokens = serializers.IntegerField()
        total_tokens = serializers.IntegerField()
        cost = serializers.DecimalField(max_digits=12, decimal_places=6, help_text="Estimated, in USD.")
        daily = UsageDaySerializer(many=True)
        periods = serializers.ListField(
            child=serializers.CharField(), help_text="The months with usage (YYYY-MM), newest first."
        )

        class Meta:
            ref_name = "Usage"

    @extend_schema(
        tags=_TAGS,
        parameters=[InputSerializer],
        responses={200: OutputSerializer, **error_responses(400, 401, 403, 404)},
        summary="One period's usage and budget",
    )
    def get(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        org = request.user.org
        try:
            period = budget_period_of_month(org=org, start=serializer.validated_data.get("period"))
        except BudgetPeriod.DoesNotExist:
            raise NotFound("There is no usage period for that month.")
        current = budget_period_current(org=org)
        data = {
            **budget_standing(period=period),
            **selectors.usage_summary(org=org, period=period),
            "period_start": period.period_start,
            "is_current": period.pk == current.pk,
            "timezone": org.timezone or "UTC",
            "daily": selectors.usage_daily(org=org, period=period),
            "periods": [
                f"{p.period_start:%Y-%m}"
                for p in selectors.budget_periods_with_usage(org=org, current=current)
            ],
        }
        return Response(self.OutputSerializer(data).data)


class BudgetApi(APIView):
    """The org's budget settings: members read them, admins replace them."""

    permission_classes = [MembersReadAdminsWrite]

    class InputSerializer(serializers.Serializer):
        monthly_override = serializers.IntegerField(
            min_value=0, allow_null=True, help_text="Tokens per month; null uses the plan's allowance."
        )
        warn_at_80 = serializers.BooleanField()
        warn_at_100 = serializers.BooleanField()
        plan = serializers.ChoiceField(
            choices=Plan.choices, required=False, help_text="Superusers only; ignored for anyone else."
        )

        class Meta:
            ref_name = "BudgetSettingsInput"

    class OutputSerializer(serializers.Serializer):
        plan = serializers.ChoiceField(choices=Plan.choices, source="org.plan")
        monthly_override = serializers.IntegerField(allow_null=True)
        warn_at_80 = serializers.BooleanField()
        warn_at_100 = serializers.BooleanField()
        updated_by = serializers.EmailField(source="updated_by.email", allow_null=True, default=None)
        updated_at = serializers.DateTimeField()

        class Meta:
            ref_name = "BudgetSettings"

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer, **error_responses(401, 403)},
        summary="Get the budget settings",
    )
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(selectors.budget_settings_get(org=request.user.org)).data)

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 403)},
        summary="Replace the budget settings",
        description=(
            "Admins only. A new override applies to the current period at once; a plan change"
            " (superusers only) applies from the next period. The change is kept in the audit log."
        ),
    )
    def put(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        prefs = budget_update(
            org=request.user.org,
            actor=request.user,
            override=data["monthly_override"],
            warn_at_80=data["warn_at_80"],
            warn_at_100=data["warn_at_100"],
            plan=data.get("plan") if request.user.is_superuser else None,
        )
        return Response(self.OutputSerializer(prefs).data)
