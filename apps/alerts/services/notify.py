"""In-app notifications: one row per person, then a toast and a bell badge pushed to their open pages.

`notify_users` is the one door for every in-app message (alerts today, budget warnings next). The
rows are written in the caller's transaction, so a message exists exactly when the change that
caused it committed; the push goes out after the commit and is best effort: a person offline
finds the message on the notifications page and in the badge on their next page.
"""

import contextlib
from collections.abc import Iterable

import structlog
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.template.loader import render_to_string
from django.utils.timezone import now
from redis.exceptions import RedisError

from apps.accounts.models import User
from apps.alerts.models import Notification, NotificationLevel

logger = structlog.get_logger(__name__)

TITLE_MAX_LENGTH = 200


def notifications_group(user_id: int) -> str:
    """The channel-layer group of one person's open pages."""
    return f"notifications.user.{user_id}"


def _unread_count_key(user_id: int) -> str:
    return f"notifications.unread.{user_id}"


def unread_count(*, user: User) -> int:
    """The badge's count, read on every page: cached per person (UNREAD_COUNT_CACHE_SECONDS) and
    dropped whenever a message is written or read; a drop missed during a Redis outage is made
    good by the expiry."""
    seconds, key = settings.UNREAD_COUNT_CACHE_SECONDS, _unread_count_key(user.pk)
    count = None
    if seconds:
        with contextlib.suppress(RedisError):
            count = cache.get(key)
    if count is None:
        count = Notification.objects.filter(user=user, read_at__isnull=True).count()
        if seconds:
            with contextlib.suppress(RedisError):
                cache.set(key, count, seconds)
    return count


def _unread_count_forget(user_ids: Iterable[int]) -> None:
    try:
        cache.delete_many([_unread_count_key(pk) for pk in user_ids])
    except RedisError as exc:
        logger.warning("unread_count_forget_failed", error=str(exc))


def notify_users(
    users: Iterable[User],
    *,
    title: str,
    body: str = "",
    link: str = "",
    level: str = NotificationLevel.INFO,
) -> list[Notification]:
    """Tell each active user of `users` (their org's members only) in the app; returns the rows."""
    recipients = [u for u in users if u.is_active and u.org_id is not None]
    notifications = Notification.objects.bulk_create(
        Notification(
            org_id=u.org_id, user=u, title=title[:TITLE_MAX_LENGTH], body=body, link=link, level=level
        )
        for u in recipients
    )
    transaction.on_commit(lambda: _push(notifications))
    return notifications


def _push(notifications: list[Notification]) -> None:
    _unread_count_forget({n.user_id for n in notifications})
    layer = get_channel_layer()
    if layer is None:
        return
    for notification in notifications:
        html = render_to_string(
            "alerts/partials/notification_push.html",
            {"notification": notification, "unread": unread_count(user=notification.user)},
        )
        try:
            async_to_sync(layer.group_send)(
                notifications_group(notification.user_id), {"type": "notification.created", "html": html}
            )
        except Exception as exc:  # the row is the message; a push that fails only loses the toast
            logger.warning("notification_push_failed", error=str(exc), notification_id=notification.pk)


@transaction.atomic
def notification_mark_read(*, user: User, pk: int | None = None) -> int:
    """Mark one of the user's notifications read, or all of them when `pk` is None."""
    unread = Notification.objects.filter(user=user, read_at__isnull=True)
    if pk is not None:
        unread = unread.filter(pk=pk)
    transaction.on_commit(lambda: _unread_count_forget([user.pk]))
    return unread.update(read_at=now())
