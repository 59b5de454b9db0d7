"""The accounts API: JWT log-in and log-out, the caller's profile, the org's members.

Token refresh is simplejwt's own `TokenRefreshView` (see urls.py): refresh tokens rotate, and the
one given up is blacklisted, so a stolen refresh token stops working once its owner refreshes.
"""

from collections.abc import Mapping

from django.conf import settings
from django.contrib.auth import authenticate
from django.contrib.auth.models import update_last_login
from django.utils.decorators import method_decorator
from django_ratelimit.decorators import ratelimit
from drf_spectacular.extensions import OpenApiViewExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.serializers import TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings as jwt_settings
from rest_framework_simplejwt.tokens import RefreshToken

from apps.accounts import selectors, services
from apps.accounts.models import ApiKey, Plan, Role
from datamind.lib.api import Pagination, error_responses, paginated_response
from datamind.lib.permissions import IsOrgAdmin

_TAGS = ["accounts"]


# Shared by both keys below; a web log-in view using the same group shares the budget too.
_LOGIN_GROUP = "accounts:login"


def _login_rate(group: str, request: Request) -> str:
    # Read per request rather than at import, so an overridden setting applies.
    return settings.LOGIN_RATE


def _email_key(group: str, request: Request) -> str:
    data = request.data if isinstance(request.data, Mapping) else {}
    return str(data.get("email", "")).strip().lower()


class TokenObtainApi(APIView):
    """Exchange an email and password for an access token and a refresh token."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        password = serializers.CharField(trim_whitespace=False, write_only=True)

        class Meta:
            ref_name = "TokenObtain"

    class OutputSerializer(serializers.Serializer):
        access = serializers.CharField(help_text="Send as `Authorization: Bearer <access>`.")
        refresh = serializers.CharField(help_text="Exchange at /api/v1/auth/token/refresh/ for a new pair.")

        class Meta:
            ref_name = "TokenPair"

    def get_authenticate_header(self, request: Request) -> str:
        # Without this DRF turns a failed log-in into a 403 (no authenticator names a scheme).
        return f'{jwt_settings.AUTH_HEADER_TYPES[0]} realm="api"'

    @extend_schema(
        tags=_TAGS,
        auth=[],
        request=InputSerializer,
        responses={200: OutputSerializer, **error_responses(400, 401, 429)},
        summary="Log in: get a token pair",
        description="Limited to a few attempts a minute per IP address and per email (429 beyond).",
    )
    @method_decorator(ratelimit(group=_LOGIN_GROUP, key="ip", rate=_login_rate, method="POST", block=True))
    @method_decorator(
        ratelimit(group=_LOGIN_GROUP, key=_email_key, rate=_login_rate, method="POST", block=True)
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        email = serializer.validated_data["email"]
        # Deactivated users are refused here too: the model backend does not authenticate them.
        user = authenticate(request, email=email, password=serializer.validated_data["password"])
        if user is None:
            services.login_failure_record(email=email, request=request)
            raise exceptions.AuthenticationFailed(
                "No active account has this email and password.", code="invalid_credentials"
            )
        refresh = RefreshToken.for_user(user)
        if jwt_settings.UPDATE_LAST_LOGIN:
            update_last_login(None, user)
        services.login_record(user=user, request=request, method="jwt")
        data = {"access": str(refresh.access_token), "refresh": str(refresh)}
        return Response(self.OutputSerializer(data).data)


class TokenRefreshSchema(OpenApiViewExtension):
    """Documents simplejwt's refresh view (routed in urls.py) like the views of this module."""

    target_class = "rest_framework_simplejwt.views.TokenRefreshView"

    def view_replacement(self) -> type:
        @extend_schema(
            tags=_TAGS,
            auth=[],
            responses={200: TokenRefreshSerializer, **error_responses(400, 401)},
            summary="Refresh: trade a refresh token for a new pair",
            description="The refresh token given is revoked; keep the new one from the response.",
        )
        class Documented(self.target_class):  # type: ignore[name-defined]
            pass

        return Documented


class LogoutApi(APIView):
    """Revoke a refresh token of the caller (access tokens expire on their own within minutes)."""

    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField()

        class Meta:
            ref_name = "Logout"

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={
            204: OpenApiResponse(description="The refresh token is revoked."),
            **error_responses(400, 401),
        },
        summary="Log out: revoke a refresh token",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            token = RefreshToken(serializer.validated_data["refresh"])
        except TokenError as error:
            raise exceptions.ValidationError({"refresh": [str(error)]})
        # Someone else's token is refused as if it were invalid: it says nothing about its owner.
        if str(token.get(jwt_settings.USER_ID_CLAIM)) != str(request.user.pk):
            raise exceptions.ValidationError({"refresh": ["Token is invalid"]})
        token.blacklist()
        services.logout_record(user=request.user, request=request, method="jwt")
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeApi(APIView):
    """The caller and their organisation."""

    class OutputSerializer(serializers.Serializer):
        class OrgSerializer(serializers.Serializer):
            id = serializers.IntegerField()
            name = serializers.CharField()
            slug = serializers.SlugField()
            plan = serializers.ChoiceField(choices=Plan.choices)
            timezone = serializers.CharField()

            class Meta:
                ref_name = "MeOrganization"

        id = serializers.IntegerField()
        email = serializers.EmailField()
        full_name = serializers.CharField()
        role = serializers.ChoiceField(choices=Role.choices)
        org = OrgSerializer(allow_null=True, help_text="Null only for a superuser outside any org.")

        class Meta:
            ref_name = "Me"

    @extend_schema(tags=_TAGS, responses={200: OutputSerializer, **error_responses(401)}, summary="Who am I")
    def get(self, request: Request) -> Response:
        return Response(self.OutputSerializer(request.user).data)


class MemberListApi(APIView):
    """The members of the caller's organisation, active first (admins only)."""

    permission_classes = [IsOrgAdmin]
    pagination_class = Pagination

    class OutputSerializer(serializers.Serializer):
        id = serializers.IntegerField()
        email = serializers.EmailField()
        full_name = serializers.CharField()
        role = serializers.ChoiceField(choices=Role.choices)
        is_active = serializers.BooleanField()
        date_joined = serializers.DateTimeField()
        last_login = serializers.DateTimeField(allow_null=True)

        class Meta:
            ref_name = "Member"

    @extend_schema(
        tags=_TAGS,
        responses={200: OutputSerializer(many=True), **error_responses(401, 403)},
        summary="List the organisation's members",
    )
    def get(self, request: Request) -> Response:
        members = selectors.member_list(org=request.user.org)
        return paginated_response(
            queryset=members, serializer_class=self.OutputSerializer, request=request, view=self
        )


class NotWithApiKey(IsOrgAdmin):
    """Org admins, logged in or with a JWT: a key may not make or revoke keys (it would outlive
    its own revocation through the keys it made)."""

    def has_permission(self, request, view) -> bool:
        if isinstance(request.auth, ApiKey):
            self.message = "API keys are managed by an admin logged in, not with an API key."
            return False
        return super().has_permission(request, view)


class ApiKeyOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices, help_text="The most the key may do.")
    prefix = serializers.CharField(help_text="The key's public start, to tell keys apart.")
    created_by = serializers.EmailField(source="created_by.email", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)

    class Meta:
        ref_name = "ApiKey"


class ApiKeyListApi(APIView):
    """The organisation's API keys; admins make new ones here (the key is in the answer, once)."""

    permission_classes = [NotWithApiKey]
    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        role = serializers.ChoiceField(choices=Role.choices, default=Role.VIEWER)

        class Meta:
            ref_name = "ApiKeyCreate"

    class CreatedSerializer(ApiKeyOutputSerializer):
        key = serializers.CharField(help_text="Send as `Authorization: Api-Key <key>`. Shown only now.")

        class Meta:
            ref_name = "ApiKeyCreated"

    @extend_schema(
        tags=_TAGS,
        responses={200: ApiKeyOutputSerializer(many=True), **error_responses(401, 403)},
        summary="List the organisation's API keys",
    )
    def get(self, request: Request) -> Response:
        keys = selectors.api_key_list(org=request.user.org)
        return paginated_response(
            queryset=keys, serializer_class=ApiKeyOutputSerializer, request=request, view=self
        )

    @extend_schema(
        tags=_TAGS,
        request=InputSerializer,
        responses={201: CreatedSerializer, **error_responses(400, 401, 403)},
        summary="Make an API key",
        description="The key itself is in this answer only; DataMind keeps just a hash of it.",
    )
    def post(self, request: Request) -> Response:
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        api_key, key = services.api_key_create(
            org=request.user.org, actor=request.user, **serializer.validated_data
        )
        data = {**ApiKeyOutputSerializer(api_key).data, "key": key}
        return Response(self.CreatedSerializer(data).data, status=status.HTTP_201_CREATED)


class ApiKeyRevokeApi(APIView):
    """Revoke a key: every request with it is refused from now on."""

    permission_classes = [NotWithApiKey]

    @extend_schema(
        tags=_TAGS,
        request=None,
        responses={200: ApiKeyOutputSerializer, **error_responses(401, 403, 404)},
        summary="Revoke an API key",
    )
    def post(self, request: Request, pk: int) -> Response:
        try:
            api_key = selectors.api_key_get(org=request.user.org, pk=pk)
        except ApiKey.DoesNotExist:
            raise exceptions.NotFound("No such API key in your organisation.")
        services.api_key_revoke(api_key=api_key, actor=request.user)
        return Response(ApiKeyOutputSerializer(api_key).data)
