import asyncio
import json

import structlog
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.core.exceptions import ValidationError

from apps.accounts.models import Role, User
from apps.chat.forms import QuestionForm
from apps.chat.models import ChatSession
from apps.chat.selectors import session_get
from apps.chat.services.fragments import csrf_token_for, event_fragment, notice_fragment
from apps.chat.services.pipeline import answer_question

logger = structlog.get_logger(__name__)

CLOSE_UNAUTHENTICATED = 4401
CLOSE_NOT_FOUND = 4404


def _session_of(user: User, pk: int) -> ChatSession:
    # In the worker thread: the session cookie's user is loaded without its org, so reading
    # `user.org` queries the database, which Django refuses to do on the event loop.
    return session_get(org=user.org, user=user, pk=pk)


class ChatConsumer(AsyncWebsocketConsumer):
    """/ws/chat/<session_id>/: one person's chat. Receives questions (and "stop"), streams the
    answer back as HTML fragments that htmx's ws extension swaps into the page."""

    answering: asyncio.Task | None = None
    # Everything is sent on this socket itself, never through the channel layer: without one, a
    # chat needs no Redis subscription, so Redis being away cannot refuse the socket.
    channel_layer_alias = None

    async def connect(self) -> None:
        user = self.scope["user"]
        if not user.is_authenticated or user.org_id is None:
            await self.close(code=CLOSE_UNAUTHENTICATED)
            return
        try:
            self.session = await database_sync_to_async(_session_of)(
                user, self.scope["url_route"]["kwargs"]["session_id"]
            )
        except ChatSession.DoesNotExist:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self.user = user
        self.csrf_token = csrf_token_for(self.scope.get("cookies", {}))
        await self.accept()

    async def disconnect(self, code: int) -> None:
        if self.answering is not None and not self.answering.done():
            self.answering.cancel()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            payload = json.loads(text_data or "{}")
        except json.JSONDecodeError:
            await self.send(text_data=notice_fragment("That message could not be read. Reload the page."))
            return
        if payload.get("action") == "stop":
            if self.answering is not None and not self.answering.done():
                self.answering.cancel()
            return
        if not self.user.has_role(Role.ANALYST):
            await self.send(text_data=notice_fragment("Viewers can read answers but not ask questions."))
            return
        form = QuestionForm(payload)
        if not form.is_valid():
            await self.send(
                text_data=notice_fragment(" ".join(form.errors.get("question", ["Type a question."])))
            )
            return
        if self.answering is not None and not self.answering.done():
            await self.send(text_data=notice_fragment("Wait for this answer to finish, or stop it first."))
            return
        self.answering = asyncio.create_task(self._answer(form.cleaned_data["question"]))

    async def _answer(self, question: str) -> None:
        try:
            await answer_question(session=self.session, user=self.user, text=question, emit=self._send_event)
        except ValidationError as exc:
            await self.send(text_data=notice_fragment(" ".join(exc.messages)))
        except asyncio.CancelledError:
            pass
        except Exception:
            logger.exception("chat_answer_failed", session_id=self.session.pk)
            await self.send(text_data=notice_fragment("Something went wrong while answering. Try again."))

    async def _send_event(self, event) -> None:
        await self.send(
            text_data=event_fragment(event, session=self.session, user=self.user, csrf_token=self.csrf_token)
        )
