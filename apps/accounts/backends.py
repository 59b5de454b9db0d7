from django.contrib.auth.backends import ModelBackend

from apps.accounts.models import User


class UserWithOrgBackend(ModelBackend):
    """Django's model backend, reading a session's user together with their organisation: every
    page shows the organisation and nearly every view scopes its queries by it, so this saves a
    query per request."""

    def get_user(self, user_id: int) -> User | None:
        try:
            user = User.objects.select_related("org").get(pk=user_id)
        except User.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None
