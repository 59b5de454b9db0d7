from django import template

from apps.alerts.services.notify import unread_count

register = template.Library()


@register.inclusion_tag("alerts/partials/bell.html", takes_context=True)
def notification_bell(context: dict) -> dict:
    """The bell in the top bar, with the unread count and the socket that updates it."""
    user = context["user"]
    return {"unread": unread_count(user=user) if user.org_id else 0}
