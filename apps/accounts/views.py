from collections.abc import Callable
from functools import wraps

import structlog
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login, logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm, SetPasswordForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect
from django_ratelimit.decorators import ratelimit

from apps.accounts import selectors, services
from apps.accounts.forms import (
    ApiKeyForm,
    AuditFilterForm,
    InvitationAcceptForm,
    InviteForm,
    LoginForm,
    OrganizationForm,
    PasswordResetRequestForm,
    ProfileForm,
    RoleForm,
    SignupForm,
)
from apps.accounts.models import ApiKey, Invitation, Role, User
from datamind.lib.htmx import render_page_or_partial
from datamind.lib.permissions import ROLE_DENIED_MESSAGE, role_required
from datamind.lib.types import AuthenticatedRequest

logger = structlog.get_logger(__name__)

# Invalid input is answered 422 on every page; base.html tells htmx to swap 422 responses too, so
# a fragment with its errors replaces the old one just like a success would.
INVALID = 422
AUDIT_PAGE_SIZE = 50
LOGIN_LIMITED_MESSAGE = "Too many log-in attempts. Wait a minute and try again."
RESET_LIMITED_MESSAGE = "Too many password-reset requests. Wait a minute and try again."
# The reset link's token moves from the URL to the session, then the browser is redirected to a
# URL without it, so the token cannot leak through the Referer header or the browser history.
_RESET_SESSION_KEY = "_password_reset_token"
_RESET_URL_PLACEHOLDER = "set-password"


def _status(form: Form) -> int:
    return INVALID if form.is_bound and form.errors else 200


def anonymous_required(view: Callable) -> Callable:
    """Pages for people who are not logged in; a logged-in user is sent home instead."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if request.user.is_authenticated:
            return redirect(settings.LOGIN_REDIRECT_URL)
        return view(request, *args, **kwargs)

    return wrapped


# Read on every request rather than at import, so an overridden settings.LOGIN_RATE takes effect.
def _login_rate(group: str, request: HttpRequest) -> str:
    return settings.LOGIN_RATE


def _email_key(group: str, request: HttpRequest) -> str:
    # Lower-cased so that Ada@Acme.test and ada@acme.test share one counter.
    return request.POST.get("email", "").strip().lower()


def rate_limited(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    """settings.RATELIMIT_VIEW: what a blocking rate limit answers."""
    return render(request, "429.html", {}, status=429)


# Sign-up, log-in, log-out --------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@anonymous_required
def signup(request: HttpRequest) -> HttpResponse:
    form = SignupForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            user = services.organization_signup(
                org_name=form.cleaned_data["org_name"],
                full_name=form.cleaned_data["full_name"],
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                timezone_name=form.cleaned_data["timezone"],
                request=request,
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            login(request, user)
            services.login_record(user=user, request=request, method="signup")
            messages.success(request, f"Welcome to DataMind, {user.display_name}. {user.org} is ready.")
            return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/signup.html", {"form": form}, status=_status(form))


def _safe_next(request: HttpRequest) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    allowed = url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    )
    return target if allowed else resolve_url(settings.LOGIN_REDIRECT_URL)


@require_http_methods(["GET", "POST"])
@anonymous_required
@ratelimit(group="login:ip", key="ip", rate=_login_rate, method="POST", block=False)
@ratelimit(group="login:email", key=_email_key, rate=_login_rate, method="POST", block=False)
def login_view(request: HttpRequest) -> HttpResponse:
    context = {"next": request.POST.get("next") or request.GET.get("next", "")}
    if request.method == "POST" and request.limited:
        logger.warning("login_rate_limited", email=_email_key("", request))
        form = LoginForm(request, initial={"email": request.POST.get("email", "")})
        context |= {"form": form, "limited_message": LOGIN_LIMITED_MESSAGE}
        return render(request, "accounts/login.html", context, status=429)

    form = LoginForm(request, data=request.POST if request.method == "POST" else None)
    if form.is_valid() and form.user is not None:
        login(request, form.user)
        services.login_record(user=form.user, request=request)
        return redirect(_safe_next(request))
    if form.failure_reason:
        services.login_failure_record(
            email=form.cleaned_data["email"], request=request, reason=form.failure_reason
        )
    return render(request, "accounts/login.html", context | {"form": form}, status=_status(form))


@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated:
        services.logout_record(user=request.user, request=request)
        logout(request)
        messages.info(request, "You have logged out.")
    return redirect(settings.LOGOUT_REDIRECT_URL)


# Profile and passwords ------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
@login_required
def profile(request: AuthenticatedRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    form = ProfileForm(data, initial={"full_name": request.user.full_name})
    if form.is_valid():
        services.user_update_profile(user=request.user, full_name=form.cleaned_data["full_name"])
        messages.success(request, "Your profile was saved.")
        return redirect("accounts:profile")
    return render(request, "accounts/profile.html", {"form": form}, status=_status(form))


@require_http_methods(["GET", "POST"])
@login_required
def password_change(request: AuthenticatedRequest) -> HttpResponse:
    form = PasswordChangeForm(request.user, request.POST if request.method == "POST" else None)
    if form.is_valid():
        user = services.user_set_password(
            user=request.user, password=form.cleaned_data["new_password1"], request=request
        )
        # Changing the password ends every other session; this one stays logged in.
        update_session_auth_hash(request, user)
        messages.success(request, "Your password was changed.")
        return redirect("accounts:profile")
    return render(request, "accounts/password_change.html", {"form": form}, status=_status(form))


@require_http_methods(["GET", "POST"])
@ratelimit(group="password-reset:ip", key="ip", rate=_login_rate, method="POST", block=False)
@ratelimit(group="password-reset:email", key=_email_key, rate=_login_rate, method="POST", block=False)
def password_reset(request: HttpRequest) -> HttpResponse:
    form = PasswordResetRequestForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and request.limited:
        context = {"form": PasswordResetRequestForm(), "limited_message": RESET_LIMITED_MESSAGE}
        return render(request, "accounts/password_reset.html", context, status=429)
    if form.is_valid():
        services.password_reset_send(email=form.cleaned_data["email"], request=request)
        return redirect("accounts:password-reset-sent")
    return render(request, "accounts/password_reset.html", {"form": form}, status=_status(form))


@require_GET
def password_reset_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/password_reset_sent.html")


@require_http_methods(["GET", "POST"])
def password_reset_confirm(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    if token != _RESET_URL_PLACEHOLDER:
        request.session[_RESET_SESSION_KEY] = token
        return redirect("accounts:password-reset-confirm", uidb64=uidb64, token=_RESET_URL_PLACEHOLDER)
    user = selectors.password_reset_user(uidb64=uidb64, token=request.session.get(_RESET_SESSION_KEY, ""))
    if user is None:
        return render(request, "accounts/password_reset_confirm.html", {"valid_link": False}, status=400)

    form = SetPasswordForm(user, request.POST if request.method == "POST" else None)
    if form.is_valid():
        services.user_set_password(user=user, password=form.cleaned_data["new_password1"], request=request)
        del request.session[_RESET_SESSION_KEY]
        return redirect("accounts:password-reset-complete")
    context = {"valid_link": True, "form": form}
    return render(request, "accounts/password_reset_confirm.html", context, status=_status(form))


@require_GET
def password_reset_complete(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/password_reset_complete.html")


# Invitations -----------------------------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    try:
        invitation = services.invitation_from_token(token)
    except ValidationError as error:
        reason = " ".join(error.messages)
        return render(request, "accounts/invitation_accept.html", {"invalid_reason": reason}, status=400)
    context = {"invitation": invitation}
    if request.user.is_authenticated:
        # Accepting would switch accounts under the visitor's feet; they log out first.
        return render(request, "accounts/invitation_accept.html", context)

    form = InvitationAcceptForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            user = services.invitation_accept(
                token=token,
                full_name=form.cleaned_data["full_name"],
                password=form.cleaned_data["password1"],
                request=request,
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            login(request, user)
            services.login_record(user=user, request=request, method="invitation")
            messages.success(request, f"Welcome to {user.org}, {user.display_name}.")
            return redirect(settings.LOGIN_REDIRECT_URL)
    return render(request, "accounts/invitation_accept.html", context | {"form": form}, status=_status(form))


# Organisation settings and members -----------------------------------------------------------


@require_http_methods(["GET", "POST"])
@role_required(Role.VIEWER)
def org_settings(request: AuthenticatedRequest) -> HttpResponse:
    org = request.user.org
    if not request.user.is_org_admin:
        if request.method == "POST":
            raise PermissionDenied(ROLE_DENIED_MESSAGE[Role.ADMIN])
        return render(request, "accounts/org_settings.html", {"org": org})

    form = OrganizationForm.for_org(org, request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            services.organization_update(
                org=org,
                actor=request.user,
                name=form.cleaned_data["name"],
                timezone_name=form.cleaned_data["timezone"],
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, "Organisation settings saved.")
            return redirect("accounts:org-settings")
    return render(request, "accounts/org_settings.html", {"org": org, "form": form}, status=_status(form))


def _member_or_404(request: AuthenticatedRequest, pk: int) -> User:
    try:
        return selectors.member_get(org=request.user.org, pk=pk)
    except User.DoesNotExist:
        raise Http404("No such member in your organisation.")


def _invitation_or_404(request: AuthenticatedRequest, pk: int) -> Invitation:
    try:
        return selectors.invitation_get(org=request.user.org, pk=pk)
    except Invitation.DoesNotExist:
        raise Http404("No such invitation in your organisation.")


def _members_page(
    request: AuthenticatedRequest,
    *,
    invite_form: InviteForm | None = None,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    """The member list page, or its `members` fragment for htmx; every member action answers with it."""
    org = request.user.org
    context = {
        "members": selectors.member_list(org=org),
        "invitations": selectors.invitation_pending_list(org=org),
        "invite_form": invite_form or InviteForm(),
        "roles": Role.choices,
        "error": error,
        "invitation_days": settings.INVITATION_MAX_AGE_DAYS,
    }
    return render_page_or_partial(
        request, "accounts/member_list.html", context, partial="members", status=status
    )


def _member_changed(request: AuthenticatedRequest, member: User | None = None) -> HttpResponse:
    """After a successful change: the fresh fragment for htmx, else back to the list (PRG)."""
    if member is not None and member.pk == request.user.pk and not member.is_org_admin:
        # An admin who demoted or deactivated themselves can no longer see this page.
        home = resolve_url(settings.LOGIN_REDIRECT_URL)
        return HttpResponseClientRedirect(home) if request.htmx else redirect(home)
    if request.htmx:
        return _members_page(request)
    return redirect("accounts:member-list")


def _member_refused(request: AuthenticatedRequest, error: ValidationError) -> HttpResponse:
    return _members_page(request, error=" ".join(error.messages), status=INVALID)


@require_GET
@role_required(Role.ADMIN)
def member_list(request: AuthenticatedRequest) -> HttpResponse:
    return _members_page(request)


@require_POST
@role_required(Role.ADMIN)
def member_invite(request: AuthenticatedRequest) -> HttpResponse:
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = services.user_invite(
                org=request.user.org,
                invited_by=request.user,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                base_url=request.build_absolute_uri("/"),
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(
                request,
                f"Invitation sent to {invitation.email}. "
                f"The emailed link works for {settings.INVITATION_MAX_AGE_DAYS} days.",
            )
            return _member_changed(request)
    return _members_page(request, invite_form=form, status=INVALID)


@require_POST
@role_required(Role.ADMIN)
def member_role(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    member = _member_or_404(request, pk)
    form = RoleForm(request.POST)
    if not form.is_valid():
        return _members_page(request, error="Choose one of: viewer, analyst, admin.", status=INVALID)
    try:
        services.user_change_role(actor=request.user, user=member, role=form.cleaned_data["role"])
    except ValidationError as error:
        return _member_refused(request, error)
    messages.success(request, f"{member.display_name}'s role is now {member.get_role_display()}.")
    return _member_changed(request, member)


@require_POST
@role_required(Role.ADMIN)
def member_deactivate(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    member = _member_or_404(request, pk)
    try:
        services.user_deactivate(actor=request.user, user=member)
    except ValidationError as error:
        return _member_refused(request, error)
    messages.success(request, f"{member.display_name} was deactivated and can no longer log in.")
    return _member_changed(request, member)


@require_POST
@role_required(Role.ADMIN)
def member_reactivate(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    member = _member_or_404(request, pk)
    services.user_reactivate(actor=request.user, user=member)
    messages.success(request, f"{member.display_name} was reactivated and can log in again.")
    return _member_changed(request, member)


@require_POST
@role_required(Role.ADMIN)
def invitation_revoke(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    invitation = _invitation_or_404(request, pk)
    services.invitation_revoke(invitation=invitation, actor=request.user)
    messages.success(request, f"The invitation to {invitation.email} was revoked; its link no longer works.")
    return _member_changed(request)


# API keys --------------------------------------------------------------------------------------


def _api_keys_page(
    request: AuthenticatedRequest, *, form: ApiKeyForm | None = None, new_key: str = "", status: int = 200
) -> HttpResponse:
    """The API keys page, or its `api-keys` fragment for htmx. `new_key` is shown this once only."""
    context = {
        "api_keys": selectors.api_key_list(org=request.user.org),
        "form": form or ApiKeyForm(),
        "new_key": new_key,
    }
    return render_page_or_partial(
        request, "accounts/api_keys.html", context, partial="api-keys", status=status
    )


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def api_key_list(request: AuthenticatedRequest) -> HttpResponse:
    if request.method == "GET":
        return _api_keys_page(request)
    form = ApiKeyForm(request.POST)
    if form.is_valid():
        try:
            _api_key, key = services.api_key_create(
                org=request.user.org, actor=request.user, **form.cleaned_data
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            # Rendered, not redirected: the key must not travel through a URL or the session.
            return _api_keys_page(request, new_key=key)
    return _api_keys_page(request, form=form, status=INVALID)


@require_POST
@role_required(Role.ADMIN)
def api_key_revoke(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    try:
        api_key = selectors.api_key_get(org=request.user.org, pk=pk)
    except ApiKey.DoesNotExist:
        raise Http404("No such API key in your organisation.")
    services.api_key_revoke(api_key=api_key, actor=request.user)
    messages.success(request, f"The key “{api_key.name}” was revoked; requests with it are refused.")
    if request.htmx:
        return _api_keys_page(request)
    return redirect("accounts:api-key-list")


# Audit log -------------------------------------------------------------------------------------


@require_GET
@role_required(Role.ADMIN)
def audit_log(request: AuthenticatedRequest) -> HttpResponse:
    org = request.user.org
    form = AuditFilterForm(request.GET or None, org=org)
    filters = form.filters()
    entries = selectors.audit_log_list(org=org, **filters)
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"form": form, "page": page, "filtered": any(filters.values()), "org": org}
    return render_page_or_partial(request, "accounts/audit_log.html", context, partial="audit-table")
