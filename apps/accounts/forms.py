import zoneinfo
from functools import cache

from django import forms
from django.contrib.auth import authenticate, password_validation
from django.core.exceptions import ValidationError
from django.http import HttpRequest

from apps.accounts import selectors
from apps.accounts.models import Organization, Role, User


@cache
def timezone_choices() -> list[tuple[str, str]]:
    names = sorted(zoneinfo.available_timezones() - {"UTC"})
    return [("UTC", "UTC"), *((name, name.replace("_", " ")) for name in names)]


class ServiceForm(forms.Form):
    """A form whose data goes to a service, which may still refuse it with a ValidationError."""

    def add_service_error(self, error: ValidationError) -> None:
        """Show the service's error beside the fields it names, else at the top of the form."""
        if not hasattr(error, "error_dict"):
            self.add_error(None, error)
            return
        for name, errors in error.error_dict.items():
            self.add_error(name if name in self.fields else None, errors)


def _new_password_field(label: str, *, with_rules: bool = False) -> forms.CharField:
    return forms.CharField(
        label=label,
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        help_text=password_validation.password_validators_help_text_html() if with_rules else "",
    )


class NewPasswordForm(ServiceForm):
    """Ends with a new password typed twice; the service checks it against the password rules."""

    password1 = _new_password_field("Password", with_rules=True)
    password2 = _new_password_field("Password again")

    def clean(self) -> dict:
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", "The two passwords don't match.")
        return cleaned


class SignupForm(NewPasswordForm):
    field_order = ["org_name", "full_name", "email", "password1", "password2", "timezone"]

    org_name = forms.CharField(
        label="Organisation name",
        max_length=200,
        widget=forms.TextInput(attrs={"autocomplete": "organization"}),
    )
    full_name = forms.CharField(
        label="Your name", max_length=200, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    email = forms.EmailField(label="Work email", widget=forms.EmailInput(attrs={"autocomplete": "email"}))
    timezone = forms.ChoiceField(
        label="Time zone",
        choices=timezone_choices,
        initial="UTC",
        help_text="Reports, alerts and the audit log use this time zone.",
    )


class LoginForm(forms.Form):
    email = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )
    password = forms.CharField(
        label="Password", strip=False, widget=forms.PasswordInput(attrs={"autocomplete": "current-password"})
    )

    def __init__(self, request: HttpRequest, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.request = request
        self.user: User | None = None
        # Set when credentials were actually tried, so the view can audit the failure and why.
        self.failure_reason: str | None = None

    def clean(self) -> dict:
        cleaned = super().clean()
        email, password = cleaned.get("email"), cleaned.get("password")
        if not email or not password:
            return cleaned
        self.user = authenticate(self.request, email=email, password=password)
        if self.user is not None:
            return cleaned
        # The backend refuses inactive accounts like unknown ones. As Django's own log-in form
        # does, say so only to someone who knows the password, so it reveals nothing to a guesser.
        inactive = User.objects.filter(email__iexact=email, is_active=False).first()
        if inactive is not None and inactive.check_password(password):
            self.failure_reason = "inactive"
            raise ValidationError(
                "This account has been deactivated. Ask an admin of your organisation to reactivate it.",
                code="inactive",
            )
        self.failure_reason = "bad_credentials"
        raise ValidationError(
            "That email and password don't match an account. Check them and try again.",
            code="invalid_login",
        )


class ProfileForm(forms.Form):
    full_name = forms.CharField(
        label="Full name", max_length=200, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )


class PasswordResetRequestForm(forms.Form):
    email = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True})
    )


class InvitationAcceptForm(NewPasswordForm):
    field_order = ["full_name", "password1", "password2"]

    full_name = forms.CharField(
        label="Your name", max_length=200, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )


class OrganizationForm(ServiceForm):
    name = forms.CharField(label="Organisation name", max_length=200)
    timezone = forms.ChoiceField(
        label="Time zone",
        choices=timezone_choices,
        help_text="Reports, alerts and the audit log use this time zone.",
    )

    @classmethod
    def for_org(cls, org: Organization, data: dict | None = None) -> "OrganizationForm":
        return cls(data, initial={"name": org.name, "timezone": org.timezone})


class InviteForm(ServiceForm):
    email = forms.EmailField(
        label="Email", widget=forms.EmailInput(attrs={"placeholder": "name@company.com"})
    )
    role = forms.ChoiceField(label="Role", choices=Role.choices, initial=Role.ANALYST)


class ApiKeyForm(ServiceForm):
    name = forms.CharField(
        label="Name", max_length=100, widget=forms.TextInput(attrs={"placeholder": "e.g. Nightly export job"})
    )
    role = forms.ChoiceField(
        label="Role", choices=Role.choices, initial=Role.VIEWER, help_text="The most the key may do."
    )


class RoleForm(forms.Form):
    role = forms.ChoiceField(label="Role", choices=Role.choices)


class AuditFilterForm(forms.Form):
    action = forms.ChoiceField(label="Action", required=False)
    actor = forms.ModelChoiceField(
        label="Actor", queryset=User.objects.none(), required=False, empty_label="Anyone"
    )
    since = forms.DateField(label="From", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    until = forms.DateField(label="To", required=False, widget=forms.DateInput(attrs={"type": "date"}))
    q = forms.CharField(
        label="Search",
        required=False,
        max_length=200,
        widget=forms.TextInput(attrs={"type": "search", "placeholder": "Email, id or detail"}),
    )

    def __init__(self, *args, org: Organization, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.fields["action"].choices = [
            ("", "Any action"),
            *((action, action) for action in selectors.audit_action_choices(org=org)),
        ]
        actor = self.fields["actor"]
        actor.queryset = selectors.member_list(org=org).order_by("full_name", "email")
        actor.label_from_instance = lambda user: f"{user.display_name} ({user.email})"

    def filters(self) -> dict:
        """Keyword arguments for `selectors.audit_log_list`; a field that did not validate is ignored."""
        data: dict = {}
        if self.is_bound:
            # An invalid field (a mistyped date) is left out of cleaned_data; the others still apply.
            self.is_valid()
            data = self.cleaned_data
        actor = data.get("actor")
        return {
            "action": data.get("action") or "",
            "actor_id": actor.pk if actor else None,
            "since": data.get("since"),
            "until": data.get("until"),
            "query": (data.get("q") or "").strip(),
        }
