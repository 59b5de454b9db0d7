from django import template

from apps.alerts.services.metrics import MetricShapeError, metric_from_rows

register = template.Library()


@register.filter
def is_metric(message) -> bool:
    """A finished chat answer whose result an alert could watch: one number or a time series."""
    if message.status != "done" or not message.sql or not message.rows:
        return False
    try:
        metric_from_rows(message.columns, message.rows)
    except MetricShapeError:
        return False
    return True
