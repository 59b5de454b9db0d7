from django.http import HttpRequest

from apps.accounts.models import User


class AuthenticatedRequest(HttpRequest):
    """An HttpRequest whose user is logged in (for type checkers; views use it in signatures)."""

    user: User
