import structlog
from asgiref.sync import async_to_sync
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.cache import cache
from django.core.exceptions import ValidationError
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.cache import patch_vary_headers
from django.views.decorators.cache import cache_control
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from redis.exceptions import RedisError

from apps.accounts.models import Role
from apps.billing.services import budget_remaining
from apps.chat.forms import FeedbackForm, LLMSettingsForm, NewChatForm, QuestionForm, RenameForm
from apps.chat.models import ChatMessage, ChatSession, MessageRole
from apps.chat.providers.builtin import suggested_questions
from apps.chat.selectors import message_get, message_list, session_get, session_list
from apps.chat.services import providers as provider_services
from apps.chat.services import sessions as session_services
from apps.chat.services.fragments import notice_fragment
from apps.chat.services.pipeline import answer_question
from apps.connections.models import Connection
from apps.connections.selectors import catalogue_snapshot, connection_choices
from datamind.lib.htmx import render_page_or_partial
from datamind.lib.permissions import role_required
from datamind.lib.types import AuthenticatedRequest
from datamind.lib.vega import vega_bundle_path, vega_bundle_version

logger = structlog.get_logger(__name__)

SIDEBAR_SESSIONS = 50
# Invalid input is answered 422, which base.html lets htmx swap like a success.
INVALID = 422


@require_GET
@login_required
def index(request: AuthenticatedRequest) -> HttpResponse:
    org = request.user.org
    connections = list(connection_choices(org=org))
    search = request.GET.get("search", "").strip()
    context = {
        "sessions": session_list(org=org, user=request.user, search=search)[:SIDEBAR_SESSIONS],
        "search": search,
        "connections": connections,
        "form": NewChatForm(org=org, connections=connections),
        "provider": provider_services.provider_description(org),
        "suggestions": _suggestions([c for c in connections if c.catalogue_version][:1]),
    }
    return render(request, "chat/index.html", context)


def _suggestions(connections: list[Connection]) -> list[dict]:
    return [{"connection": c, "questions": _suggested_questions(c)} for c in connections]


def _suggested_questions(connection: Connection) -> list[str]:
    # Working them out reads the whole catalogue (half a second for hundreds of tables); they
    # change only when the catalogue does, whose version is part of the key.
    def work_out() -> list[str]:
        return suggested_questions(catalogue_snapshot(connection=connection), limit=4)

    key = f"datamind:chat:suggestions:{connection.pk}:{connection.catalogue_version}"
    try:
        return cache.get_or_set(key, work_out, timeout=24 * 3600)
    except RedisError as exc:  # a cache outage must not take the chat pages down
        logger.warning("suggestions_cache_unavailable", error=str(exc))
        return work_out()


@require_GET
@login_required
def session_search(request: AuthenticatedRequest) -> HttpResponse:
    search = request.GET.get("search", "").strip()
    sessions = session_list(org=request.user.org, user=request.user, search=search)[:SIDEBAR_SESSIONS]
    response = render(request, "chat/partials/session_list.html", {"sessions": sessions, "search": search})
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_POST
@role_required(Role.ANALYST)
def session_create(request: AuthenticatedRequest) -> HttpResponse:
    """Start a chat on a connection; with a question, ask it straight away (over plain HTTP)."""
    form = NewChatForm(request.POST, org=request.user.org)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
        return redirect("chat:index")
    session = session_services.session_create(user=request.user, connection=form.cleaned_data["connection"])
    if question := form.cleaned_data["question"]:
        try:
            async_to_sync(answer_question)(session=session, user=request.user, text=question)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
    return redirect("chat:session-detail", pk=session.pk)


def _session_or_404(request: AuthenticatedRequest, pk: int) -> ChatSession:
    try:
        return session_get(org=request.user.org, user=request.user, pk=pk)
    except ChatSession.DoesNotExist:
        raise Http404("No such chat.") from None


@require_GET
@login_required
def session_detail(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    session = _session_or_404(request, pk)
    chat_messages = list(message_list(session=session))
    connection = session.connection
    context = {
        "session": session,
        "chat_messages": chat_messages,
        "sessions": session_list(org=request.user.org, user=request.user)[:SIDEBAR_SESSIONS],
        "provider": provider_services.provider_description(request.user.org),
        "suggestions": (
            _suggested_questions(connection) if connection is not None and not chat_messages else []
        ),
        "version": vega_bundle_version(),
        "budget": budget_remaining(org=request.user.org),
    }
    return render(request, "chat/session_detail.html", context)


@require_POST
@login_required
def session_rename(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    session = _session_or_404(request, pk)
    form = RenameForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            session_services.session_rename(session=session, title=form.cleaned_data["title"])
        except ValidationError as exc:
            error = " ".join(exc.messages)
    else:
        error = "A chat needs a name of at most 200 characters."
    if request.htmx:
        response = render(
            request,
            "chat/session_detail.html#title",
            {"session": session, "rename_error": error},
            status=INVALID if error else 200,
        )
    else:
        if error:
            messages.error(request, error)
        response = redirect("chat:session-detail", pk=session.pk)
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_POST
@login_required
def session_delete(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    session = _session_or_404(request, pk)
    session_services.session_delete(session=session)
    messages.success(request, "Chat deleted.")
    return redirect("chat:index")


@require_POST
@role_required(Role.ANALYST)
def ask(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    """The plain-HTTP door: the same pipeline, the whole answer at once (no WebSocket needed)."""
    session = _session_or_404(request, pk)
    form = QuestionForm(request.POST)
    if not form.is_valid():
        error = " ".join(form.errors.get("question", ["Type a question."]))
        if request.htmx:
            response = HttpResponse(notice_fragment(error), status=INVALID)
        else:
            messages.error(request, error)
            response = redirect("chat:session-detail", pk=session.pk)
    else:
        message = async_to_sync(answer_question)(
            session=session, user=request.user, text=form.cleaned_data["question"]
        )
        if request.htmx:
            question = session.messages.filter(role=MessageRole.USER).order_by("-created_at", "-id").first()
            response = render(
                request,
                "chat/partials/http_answer.html",
                {"question": question, "message": message, "session": session},
            )
        else:
            response = redirect("chat:session-detail", pk=session.pk)
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_GET
@login_required
def message_rows(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    message = _message_or_404(request, pk)
    context = {"message": message, "page": request.GET.get("page", 1), "session": message.session}
    # The pager's links also work without JavaScript: they then get a page around the rows.
    return render_page_or_partial(request, "chat/answer_rows.html", context, partial="rows")


def _message_or_404(request: AuthenticatedRequest, pk: int) -> ChatMessage:
    try:
        return message_get(org=request.user.org, user=request.user, pk=pk)
    except ChatMessage.DoesNotExist:
        raise Http404("No such answer.") from None


@require_POST
@login_required
def message_feedback(request: AuthenticatedRequest, pk: int) -> HttpResponse:
    message = _message_or_404(request, pk)
    form = FeedbackForm(request.POST)
    error = ""
    if form.is_valid():
        try:
            message = session_services.message_feedback(
                message=message,
                helpful=form.cleaned_data["helpful"] == "yes",
                comment=form.cleaned_data["comment"],
            )
        except ValidationError as exc:
            error = " ".join(exc.messages)
    else:
        error = "Say whether the answer was helpful."
    if request.htmx:
        response = render(
            request,
            "chat/partials/feedback.html",
            {"message": message, "feedback_error": error},
            status=INVALID if error else 200,
        )
    else:
        if error:
            messages.error(request, error)
        response = redirect("chat:session-detail", pk=message.session_id)
    patch_vary_headers(response, ("HX-Request",))
    return response


@require_GET
@cache_control(public=True, max_age=365 * 24 * 3600, immutable=True)
def vega_bundle(request: HttpRequest, version: str) -> FileResponse:
    """vega-embed from the vl-convert-python package; the URL carries its version, so it caches forever."""
    return FileResponse(open(vega_bundle_path(), "rb"), content_type="text/javascript")


# Language-model settings (Settings section, admins only) --------------------------------------

LLM_SETTINGS_TEMPLATE = "chat/llm_settings.html"


def _llm_settings_context(request: AuthenticatedRequest, form: LLMSettingsForm | None = None) -> dict:
    org = request.user.org
    if form is None:
        form = LLMSettingsForm.for_settings(provider_services.llm_settings_get(org))
    return {"form": form, "active": provider_services.provider_description(org)}


@require_http_methods(["GET", "POST"])
@role_required(Role.ADMIN)
def llm_settings(request: AuthenticatedRequest) -> HttpResponse:
    org = request.user.org
    current = provider_services.llm_settings_get(org)
    form = LLMSettingsForm.for_settings(current, request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            provider_services.llm_settings_update(
                org=org,
                actor=request.user,
                provider=form.cleaned_data["provider"],
                model=form.cleaned_data["model"],
                base_url=form.cleaned_data["base_url"],
                api_key=form.api_key_change(),
            )
        except ValidationError as error:
            form.add_service_error(error)
        else:
            messages.success(request, "Language-model settings saved. Use “Test” to check them.")
            return redirect("chat:llm-settings")
    # 422 for invalid input, as on every page (base.html lets htmx swap it).
    status = 422 if form.is_bound and form.errors else 200
    return render(request, LLM_SETTINGS_TEMPLATE, _llm_settings_context(request, form), status=status)


@require_POST
@role_required(Role.ADMIN)
def llm_settings_test(request: AuthenticatedRequest) -> HttpResponse:
    """Try the saved settings with a tiny request; htmx gets only the result, inline."""
    ok, message = async_to_sync(provider_services.llm_settings_test)(org=request.user.org)
    context = _llm_settings_context(request) | {"test": {"ok": ok, "message": message}}
    return render_page_or_partial(request, LLM_SETTINGS_TEMPLATE, context, partial="test-result")
