"""HTML fragments for what the pipeline reports, rendered by the template engine (so model output
is always autoescaped) and swapped into the page by htmx (`hx-swap-oob`). The consumer sends them;
the HTTP fallback renders the finished message with the same templates."""

from collections.abc import Mapping

from django.conf import settings
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template.loader import render_to_string

from apps.accounts.models import User
from apps.chat.models import ChatSession
from apps.chat.services.pipeline import Event

_TEMPLATES = {
    "question": "chat/partials/turn_start.html",
    "phase": "chat/partials/event_phase.html",
    "token": "chat/partials/event_token.html",
    "sql": "chat/partials/event_sql.html",
    "attempt_failed": "chat/partials/event_attempt.html",
    "result": "chat/partials/event_result.html",
    "analysis_token": "chat/partials/event_analysis_token.html",
    "done": "chat/partials/event_done.html",
}


def csrf_token_for(cookies: Mapping[str, str]) -> str:
    """A CSRF token for the plain forms of a fragment sent over the socket (an answer's export
    buttons), masked from the page's CSRF cookie as `{% csrf_token %}` on the page would be.
    Without it those forms would post without a token and be refused until the page reloads."""
    secret = cookies.get(settings.CSRF_COOKIE_NAME, "")
    if not secret:
        return ""
    request = HttpRequest()
    request.META["CSRF_COOKIE"] = secret
    return get_token(request)


def event_fragment(event: Event, *, session: ChatSession, user: User, csrf_token: str = "") -> str:
    context = {**event.data, "session": session, "user": user, "csrf_token": csrf_token}
    return render_to_string(_TEMPLATES[event.kind], context)


def notice_fragment(text: str) -> str:
    """A message about the request itself (not an answer), shown above the question box."""
    return render_to_string("chat/partials/notice.html", {"text": text})
