"""50 questions asked at once through the real pipeline (real anthropic SDK against the local fake
server, real Postgres) against a budget with room for exactly 10 answers' worth of usage."""

import asyncio

import pytest
from channels.db import database_sync_to_async
from django.core.exceptions import ValidationError
from django.db.models import Sum

from apps.billing.models import BudgetPeriod, BudgetSettings, Reservation, UsageRecord
from apps.chat.models import ChatSession, MessageStatus
from apps.chat.services.pipeline import answer_question
from apps.chat.tests.test_pipeline import SQL_BY_REGION, sql_reply

pytestmark = pytest.mark.django_db(transaction=True)

QUESTIONS = 50
USAGE_PER_CALL = (300, 100)  # what the fake model reports for every call: input, output
CALLS_PER_ANSWER = 2  # the SQL, then the analysis
ROOM_FOR = 10


async def test_fifty_questions_at_once_never_spend_more_than_the_budget(fake_llm, personas, shop_connection):
    per_answer = CALLS_PER_ANSWER * sum(USAGE_PER_CALL)
    budget = ROOM_FOR * per_answer
    await database_sync_to_async(BudgetSettings.objects.create)(org=personas.org, monthly_override=budget)

    def reply(request: dict) -> object:
        from datamind.lib.fake_llm import Reply

        asks_for_sql = "write exactly one SELECT" in str(request.get("system", ""))
        text = sql_reply(SQL_BY_REGION) if asks_for_sql else "Totals by region."
        return Reply(text=text, input_tokens=USAGE_PER_CALL[0], output_tokens=USAGE_PER_CALL[1])

    fake_llm.set_default(reply)
    sessions = [
        await database_sync_to_async(ChatSession.objects.create)(
            org=personas.org, user=personas.analyst, connection=shop_connection
        )
        for _ in range(QUESTIONS)
    ]

    async def ask(session: ChatSession):
        try:
            return await answer_question(session=session, user=personas.analyst, text="total sales by region")
        except ValidationError:
            return None

    answers = await asyncio.gather(*(ask(s) for s in sessions))

    answered = [a for a in answers if a is not None and a.status == MessageStatus.DONE]
    refused = [a for a in answers if a is not None and a.status == MessageStatus.REFUSED]
    assert 1 <= len(answered) <= ROOM_FOR
    assert len(answered) + len(refused) == QUESTIONS - sum(a is None for a in answers)
    spent = await database_sync_to_async(
        lambda: UsageRecord.objects.filter(org=personas.org).aggregate(
            total=Sum("input_tokens") + Sum("output_tokens")
        )["total"]
    )()
    assert spent <= budget
    period = await database_sync_to_async(BudgetPeriod.objects.get)(org=personas.org)
    assert period.used == spent and period.reserved == 0
    open_reservations = await database_sync_to_async(
        Reservation.objects.filter(settled_at__isnull=True, released_at__isnull=True).count
    )()
    assert open_reservations == 0
