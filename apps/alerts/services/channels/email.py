"""``email``: HTML and text through Django's e-mail framework, with the chart as an inline PNG."""

from email.mime.image import MIMEImage
from typing import Any

import structlog
import vl_convert
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.core.validators import validate_email
from django.template.loader import render_to_string

from apps.alerts.models import AlertDelivery
from apps.alerts.services.channels.base import AlertMessage, Channel, DeliveryError

logger = structlog.get_logger(__name__)
MAX_RECIPIENTS = 20
CHART_CID = "alert-chart"


def chart_png(spec: dict[str, Any]) -> bytes | None:
    if not spec:
        return None
    try:
        return vl_convert.vegalite_to_png(spec, scale=2)
    except Exception as exc:  # a message without its chart is better than no message
        logger.warning("alert_chart_render_failed", error=str(exc))
        return None


class EmailChannel(Channel):
    kind = "email"
    label = "E-mail"

    @classmethod
    def clean(cls, settings: dict[str, Any], *, previous: dict[str, Any] | None = None) -> dict[str, Any]:
        to = settings.get("to") or []
        if isinstance(to, str):
            to = to.replace(";", ",").replace("\n", ",").split(",")
        addresses = [a.strip() for a in to if a.strip()]
        if not addresses or len(addresses) > MAX_RECIPIENTS:
            raise ValidationError({"channels": f"E-mail needs 1 to {MAX_RECIPIENTS} addresses."})
        for address in addresses:
            try:
                validate_email(address)
            except ValidationError:
                raise ValidationError({"channels": f"{address} is not an e-mail address."}) from None
        return {"kind": cls.kind, "to": addresses}

    @classmethod
    def target(cls, settings: dict[str, Any], event) -> str:
        return ", ".join(settings["to"])

    @classmethod
    def send(cls, delivery: AlertDelivery, message: AlertMessage) -> None:
        context = {"message": message}
        email = EmailMultiAlternatives(
            subject=message.title,
            body=render_to_string("alerts/email/notification.txt", context),
            from_email=django_settings.DEFAULT_FROM_EMAIL,
            to=delivery.config["to"],
        )
        png = chart_png(message.chart)
        html = render_to_string(
            "alerts/email/notification.html", {**context, "chart_cid": CHART_CID if png else ""}
        )
        email.attach_alternative(html, "text/html")
        if png:
            email.mixed_subtype = "related"
            image = MIMEImage(png, "png")
            image.add_header("Content-ID", f"<{CHART_CID}>")
            image.add_header("Content-Disposition", "inline", filename="chart.png")
            email.attach(image)
        try:
            email.send()
        except OSError as exc:  # SMTP refusals and network failures: the next attempt may pass
            raise DeliveryError(f"The mail server did not take the message: {exc}", retryable=True) from exc
