from django.contrib.auth.backends import ModelBackend

from apps.accounts.models import User
from datamind.lib.prepared import Prepared

# Every signed-in request reads its user: compiled once (see Prepared).
_USER_WITH_ORG = Prepared(lambda pk: User.objects.select_related("org").filter(pk=pk), "pk")


class UserWithOrgBackend(ModelBackend):
    """Django's model backend, reading a session's user together with their organisation: every
    page shows the organisation and nearly every view scopes its queries by it, so this saves a
    query per request."""

    def get_user(self, user_id: int) -> User | None:
        try:
            user = _USER_WITH_ORG.get(pk=int(user_id))
        except User.DoesNotExist:
            return None
        return user if self.user_can_authenticate(user) else None
