"""How audit-log entries read on the audit page."""

from django import template
from django.apps import apps

from apps.accounts.models import AuditLog

register = template.Library()


@register.filter
def audit_details(metadata: dict) -> list[tuple[str, str]]:
    """Metadata as (key, value) pairs; a [before, after] pair reads "before → after"."""
    pairs = []
    for key, value in (metadata or {}).items():
        if isinstance(value, list | tuple):
            value = " → ".join(str(v) for v in value)
        elif isinstance(value, dict):
            value = ", ".join(f"{k}: {v}" for k, v in value.items())
        pairs.append((key.replace("_", " "), str(value)))
    return pairs


@register.filter
def audit_target(entry: AuditLog) -> str:
    if not entry.target_type:
        return ""
    try:
        name = apps.get_model(entry.target_type)._meta.verbose_name
    except (LookupError, ValueError):
        name = entry.target_type
    return f"{str(name).capitalize()} #{entry.target_id}"
