import hashlib
import hmac
import secrets
from datetime import timedelta
from typing import Any

import structlog
from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.tokens import default_token_generator
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify

from apps.accounts.models import ApiKey, AuditLog, Invitation, Organization, Role, User

logger = structlog.get_logger(__name__)

_INVITATION_SALT = "datamind.invitation"


# Audit log ------------------------------------------------------------------------------------


def audit_log_record(
    *,
    action: str,
    org: Organization | None,
    actor: User | None = None,
    target: Any = None,
    metadata: dict | None = None,
    request: HttpRequest | None = None,
) -> AuditLog:
    """Record one sensitive action. The single way entries are written, from every app."""
    entry = AuditLog(
        org=org,
        actor=actor if actor is not None and actor.pk else None,
        action=action,
        target_type=target._meta.label_lower if target is not None else "",
        target_id=str(target.pk) if target is not None else "",
        metadata=metadata or {},
    )
    if request is not None:
        entry.ip = request.META.get("REMOTE_ADDR") or None
        entry.user_agent = request.headers.get("User-Agent", "")[:400]
    entry.save()
    logger.info("audit", action=action, target_type=entry.target_type, target_id=entry.target_id)
    return entry


# API keys --------------------------------------------------------------------------------------

API_KEY_PREFIX = "dm_"
# A key's last use is written at most this often, so a busy integration does not write per call.
API_KEY_TOUCH_INTERVAL = timedelta(minutes=1)


class ApiKeyInvalid(Exception):
    """The presented key is unknown, revoked, or its creator can no longer act."""


def _api_key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@transaction.atomic
def api_key_create(*, org: Organization, actor: User, name: str, role: str) -> tuple[ApiKey, str]:
    """Make a key for the org; returns it and the key itself, which is never shown again."""
    name = name.strip()
    if not name:
        raise ValidationError({"name": "Give the key a name that says which integration uses it."})
    if role not in Role.values:
        raise ValidationError({"role": "Choose one of: viewer, analyst, admin."})
    prefix = f"{API_KEY_PREFIX}{secrets.token_hex(4)}"
    key = f"{prefix}_{secrets.token_urlsafe(32)}"
    api_key = ApiKey.objects.create(
        org=org, name=name[:100], role=role, prefix=prefix, key_hash=_api_key_hash(key), created_by=actor
    )
    audit_log_record(
        action="api_key.created", org=org, actor=actor, target=api_key, metadata={"name": name, "role": role}
    )
    return api_key, key


@transaction.atomic
def api_key_revoke(*, api_key: ApiKey, actor: User) -> ApiKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
        audit_log_record(
            action="api_key.revoked",
            org=api_key.org,
            actor=actor,
            target=api_key,
            metadata={"name": api_key.name},
        )
    return api_key


def api_key_authenticate(*, key: str) -> tuple[User, ApiKey]:
    """The user a key acts as (role capped at the key's) and the key; records when it was used."""
    # "dm_<8 hex>_<secret>": the secret itself may contain "_".
    prefix = "_".join(key.split("_", 2)[:2])
    api_key = (
        ApiKey.objects.select_related("created_by__org", "org")
        .filter(prefix=prefix, revoked_at__isnull=True)
        .first()
    )
    if api_key is None or not hmac.compare_digest(api_key.key_hash, _api_key_hash(key)):
        raise ApiKeyInvalid("Invalid or revoked API key.")
    user = api_key.created_by
    if user is None or not user.is_active or user.org_id != api_key.org_id:
        raise ApiKeyInvalid("This API key's creator can no longer act for the organisation; make a new key.")
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at > API_KEY_TOUCH_INTERVAL:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now
    # In memory only: this request acts with at most the key's role. The instance must never be
    # saved, or the cap would be written to the creator's own account.
    if Role(api_key.role).rank < Role(user.role).rank:
        user.role = api_key.role
    user.save = _refuse_to_save  # type: ignore[method-assign]
    return user, api_key


def _refuse_to_save(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("A user acting through an API key is not saved: its role is capped for this request.")


# Organisations and sign-up -----------------------------------------------------------------


def _unique_slug(name: str) -> str:
    base = slugify(name)[:60] or "org"
    slug, n = base, 1
    while Organization.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


@transaction.atomic
def organization_signup(
    *,
    org_name: str,
    full_name: str,
    email: str,
    password: str,
    timezone_name: str = "UTC",
    request: HttpRequest | None = None,
) -> User:
    """Create an organisation and its first admin."""
    email = email.strip().lower()
    if User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": "An account with this email already exists. Log in instead."})
    org = Organization(name=org_name.strip(), slug=_unique_slug(org_name), timezone=timezone_name)
    org.full_clean()
    org.save()
    user = User(email=email, full_name=full_name.strip(), org=org, role=Role.ADMIN)
    validate_password(password, user)
    user.set_password(password)
    user.save()
    audit_log_record(action="org.signup", org=org, actor=user, target=org, request=request)
    return user


@transaction.atomic
def organization_update(*, org: Organization, actor: User, name: str, timezone_name: str) -> Organization:
    changes = {}
    if org.name != name:
        changes["name"] = [org.name, name]
    if org.timezone != timezone_name:
        changes["timezone"] = [org.timezone, timezone_name]
    org.name, org.timezone = name, timezone_name
    org.full_clean()
    org.save(update_fields=["name", "timezone"])
    if changes:
        audit_log_record(action="org.update", org=org, actor=actor, target=org, metadata=changes)
    return org


# Invitations --------------------------------------------------------------------------------


def invitation_token(invitation: Invitation) -> str:
    return signing.dumps({"id": invitation.pk, "email": invitation.email}, salt=_INVITATION_SALT)


def invitation_from_token(token: str) -> Invitation:
    """The pending invitation a token names, or ValidationError saying why it cannot be used."""
    max_age = timedelta(days=settings.INVITATION_MAX_AGE_DAYS)
    try:
        payload = signing.loads(token, salt=_INVITATION_SALT, max_age=max_age)
    except signing.SignatureExpired:
        raise ValidationError("This invitation has expired. Ask your admin to send a new one.")
    except signing.BadSignature:
        raise ValidationError("This invitation link is not valid. Check that you copied all of it.")
    invitation = (
        Invitation.objects.select_related("org").filter(pk=payload["id"], email=payload["email"]).first()
    )
    if invitation is None or invitation.revoked_at is not None:
        raise ValidationError("This invitation was withdrawn. Ask your admin to send a new one.")
    if invitation.accepted_at is not None:
        raise ValidationError("This invitation was already used. Log in with your email instead.")
    if timezone.now() >= invitation.expires_at:
        raise ValidationError("This invitation has expired. Ask your admin to send a new one.")
    return invitation


def _send_invitation_email(*, invitation: Invitation, accept_url: str) -> None:
    context = {"invitation": invitation, "accept_url": accept_url}
    send_mail(
        subject=f"You're invited to {invitation.org.name} on DataMind",
        message=render_to_string("accounts/email/invitation.txt", context),
        html_message=render_to_string("accounts/email/invitation.html", context),
        from_email=None,
        recipient_list=[invitation.email],
    )


@transaction.atomic
def user_invite(*, org: Organization, invited_by: User, email: str, role: str, base_url: str) -> Invitation:
    """Invite someone by email. `base_url` is the site's scheme and host, e.g. https://bi.acme.com."""
    email = email.strip().lower()
    if role not in Role.values:
        raise ValidationError({"role": "Choose one of: viewer, analyst, admin."})
    existing = User.objects.filter(email__iexact=email).first()
    if existing is not None:
        message = (
            "This person is already a member of your organisation."
            if existing.org_id == org.pk
            else "This email already has a DataMind account in another organisation."
        )
        raise ValidationError({"email": message})
    # A new invitation replaces any earlier pending one for the same address.
    Invitation.objects.filter(org=org, email__iexact=email, accepted_at__isnull=True).update(
        revoked_at=timezone.now()
    )
    invitation = Invitation.objects.create(
        org=org,
        email=email,
        role=role,
        invited_by=invited_by,
        expires_at=timezone.now() + timedelta(days=settings.INVITATION_MAX_AGE_DAYS),
    )
    accept_url = base_url.rstrip("/") + reverse(
        "accounts:invitation-accept", args=[invitation_token(invitation)]
    )
    transaction.on_commit(lambda: _send_invitation_email(invitation=invitation, accept_url=accept_url))
    audit_log_record(
        action="user.invite",
        org=org,
        actor=invited_by,
        target=invitation,
        metadata={"email": email, "role": role},
    )
    return invitation


@transaction.atomic
def invitation_revoke(*, invitation: Invitation, actor: User) -> Invitation:
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    audit_log_record(
        action="invitation.revoke",
        org=invitation.org,
        actor=actor,
        target=invitation,
        metadata={"email": invitation.email},
    )
    return invitation


@transaction.atomic
def invitation_accept(
    *, token: str, full_name: str, password: str, request: HttpRequest | None = None
) -> User:
    invitation = invitation_from_token(token)
    # Lock the row so two clicks on the same link cannot create two accounts.
    invitation = Invitation.objects.select_for_update().select_related("org").get(pk=invitation.pk)
    if invitation.accepted_at is not None:
        raise ValidationError("This invitation was already used. Log in with your email instead.")
    if User.objects.filter(email__iexact=invitation.email).exists():
        raise ValidationError("An account with this email already exists. Log in instead.")
    user = User(email=invitation.email, full_name=full_name.strip(), org=invitation.org, role=invitation.role)
    validate_password(password, user)
    user.set_password(password)
    user.save()
    invitation.accepted_at = timezone.now()
    invitation.save(update_fields=["accepted_at"])
    audit_log_record(
        action="invitation.accept",
        org=invitation.org,
        actor=user,
        target=user,
        metadata={"role": invitation.role},
        request=request,
    )
    return user


# Members ------------------------------------------------------------------------------------


def _lock_org_admins(org: Organization) -> list[User]:
    """The org's active admins, locked so two admins cannot demote each other at the same time."""
    return list(User.objects.select_for_update().filter(org=org, role=Role.ADMIN, is_active=True))


def _ensure_not_last_admin(*, user: User, message: str) -> None:
    admins = _lock_org_admins(user.org)
    if [a.pk for a in admins] == [user.pk]:
        raise ValidationError(message)


@transaction.atomic
def user_change_role(*, actor: User, user: User, role: str) -> User:
    if role not in Role.values:
        raise ValidationError({"role": "Choose one of: viewer, analyst, admin."})
    if user.role == role:
        return user
    if user.role == Role.ADMIN:
        _ensure_not_last_admin(
            user=user,
            message="This is the organisation's last admin. Make someone else an admin first.",
        )
    previous = user.role
    user.role = role
    user.save(update_fields=["role"])
    audit_log_record(
        action="user.role_change",
        org=user.org,
        actor=actor,
        target=user,
        metadata={"email": user.email, "from": previous, "to": role},
    )
    return user


@transaction.atomic
def user_deactivate(*, actor: User, user: User) -> User:
    if not user.is_active:
        return user
    if user.role == Role.ADMIN:
        _ensure_not_last_admin(
            user=user,
            message="This is the organisation's last admin. Make someone else an admin first.",
        )
    user.is_active = False
    user.save(update_fields=["is_active"])
    audit_log_record(
        action="user.deactivate", org=user.org, actor=actor, target=user, metadata={"email": user.email}
    )
    return user


@transaction.atomic
def user_reactivate(*, actor: User, user: User) -> User:
    if user.is_active:
        return user
    user.is_active = True
    user.save(update_fields=["is_active"])
    audit_log_record(
        action="user.reactivate", org=user.org, actor=actor, target=user, metadata={"email": user.email}
    )
    return user


@transaction.atomic
def user_update_profile(*, user: User, full_name: str) -> User:
    user.full_name = full_name.strip()
    user.save(update_fields=["full_name"])
    return user


@transaction.atomic
def user_set_password(*, user: User, password: str, request: HttpRequest | None = None) -> User:
    """Set a new password (after the caller checked the old one or a reset token)."""
    validate_password(password, user)
    user.set_password(password)
    user.save(update_fields=["password"])
    audit_log_record(action="user.password_change", org=user.org, actor=user, target=user, request=request)
    return user


def password_reset_send(*, email: str, request: HttpRequest) -> None:
    """Email a password-reset link to the active account with this address, if there is one.

    The caller says the same thing whether or not an account exists, so the form cannot be used to
    find out who has one.
    """
    user = User.objects.filter(email__iexact=email.strip(), is_active=True).select_related("org").first()
    if user is None or not user.has_usable_password():
        return
    path = reverse(
        "accounts:password-reset-confirm",
        args=[urlsafe_base64_encode(force_bytes(user.pk)), default_token_generator.make_token(user)],
    )
    context = {
        "user": user,
        "reset_url": request.build_absolute_uri(path),
        "valid_hours": settings.PASSWORD_RESET_TIMEOUT // 3600,
    }
    send_mail(
        subject="Reset your DataMind password",
        message=render_to_string("accounts/email/password_reset.txt", context),
        html_message=render_to_string("accounts/email/password_reset.html", context),
        from_email=None,
        recipient_list=[user.email],
    )
    audit_log_record(action="user.password_reset_request", org=user.org, target=user, request=request)


# Authentication events ----------------------------------------------------------------------


def login_record(*, user: User, request: HttpRequest, method: str = "password") -> None:
    audit_log_record(
        action="user.login",
        org=user.org,
        actor=user,
        target=user,
        metadata={"method": method},
        request=request,
    )


def login_failure_record(*, email: str, request: HttpRequest, reason: str = "bad_credentials") -> None:
    # The entry goes to the org of the account that was tried, so its admins see the attempts.
    user = User.objects.filter(email__iexact=email.strip()).select_related("org").first()
    audit_log_record(
        action="user.login_failed",
        org=user.org if user else None,
        target=user,
        metadata={"email": email.strip().lower()[:254], "reason": reason},
        request=request,
    )


def logout_record(*, user: User, request: HttpRequest, method: str = "session") -> None:
    audit_log_record(
        action="user.logout",
        org=user.org,
        actor=user,
        target=user,
        metadata={"method": method},
        request=request,
    )


# Demo ---------------------------------------------------------------------------------------

DEMO_PASSWORD = "datamind-demo"  # noqa: S105 - printed by `make run` and in the README on purpose


@transaction.atomic
def demo_org_ensure() -> Organization:
    """The demo organisation Acme with its admin and analyst; safe to run again."""
    if not settings.DEBUG:
        raise RuntimeError("Demo users are never created in production mode (DEBUG is off).")
    org, _ = Organization.objects.get_or_create(
        slug="acme", defaults={"name": "Acme", "plan": "pro", "timezone": "Europe/London"}
    )
    for email, full_name, role in (
        ("admin@acme.test", "Ada Admin", Role.ADMIN),
        ("analyst@acme.test", "Alan Analyst", Role.ANALYST),
    ):
        user, created = User.objects.get_or_create(
            email=email, defaults={"org": org, "full_name": full_name, "role": role}
        )
        if created:
            user.set_password(DEMO_PASSWORD)
            user.save(update_fields=["password"])
    return org
