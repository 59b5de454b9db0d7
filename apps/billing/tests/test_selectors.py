import datetime

from apps.billing.selectors import (
    budget_periods_with_usage,
    usage_by_model,
    usage_by_purpose,
    usage_by_user,
    usage_daily,
    usage_summary,
    usage_top_questions,
)
from apps.billing.services import budget_period_current
from apps.billing.tests.factories import UsageRecordFactory
from apps.chat.models import ChatMessage, ChatSession, MessageRole

UTC = datetime.UTC


def at(day: int, hour: int) -> datetime.datetime:
    return datetime.datetime(2026, 12, day, hour, 0, tzinfo=UTC)


def test_usage_is_summed_per_local_day_user_model_and_purpose(personas):
    org = personas.org
    org.timezone = "Pacific/Auckland"
    org.save()
    period = budget_period_current(org=org, at=at(5, 0))
    # 12:00 UTC on 5 December is 6 December in Auckland; 10:00 UTC on 30 November is still November.
    UsageRecordFactory(org=org, user=personas.analyst, created_at=at(5, 1), input_tokens=100, output_tokens=0)
    UsageRecordFactory(
        org=org, user=personas.analyst, created_at=at(5, 12), input_tokens=50, output_tokens=50
    )
    UsageRecordFactory(org=org, user=personas.admin, created_at=at(5, 13), model="other", purpose="analysis")
    UsageRecordFactory(org=org, created_at=datetime.datetime(2026, 11, 30, 10, tzinfo=UTC), input_tokens=999)
    UsageRecordFactory(org=personas.other_org, created_at=at(5, 1), input_tokens=7_777)

    assert usage_summary(org=org, period=period)["total_tokens"] == 350
    daily = {row["day"]: row["total_tokens"] for row in usage_daily(org=org, period=period)}
    assert daily == {datetime.date(2026, 12, 5): 100, datetime.date(2026, 12, 6): 250}
    users = [(row["user__email"], row["total_tokens"]) for row in usage_by_user(org=org, period=period)]
    assert users == [("analyst@acme.test", 200), ("admin@acme.test", 150)]
    assert [row["model"] for row in usage_by_model(org=org, period=period)] == ["claude-test", "other"]
    assert [row["purpose"] for row in usage_by_purpose(org=org, period=period)] == ["generation", "analysis"]


def test_another_orgs_period_shows_nothing(personas):
    UsageRecordFactory(org=personas.other_org)
    foreign = budget_period_current(org=personas.other_org)
    assert usage_summary(org=personas.org, period=foreign)["calls"] == 0
    assert list(usage_top_questions(org=personas.org, period=foreign)) == []


def test_the_top_questions_are_the_costliest_answers_with_their_question(personas, django_assert_num_queries):
    org = personas.org
    session = ChatSession.objects.create(org=org, user=personas.analyst, title="Sales")
    answers = []
    for i, tokens in enumerate([300, 900]):
        ChatMessage.objects.create(session=session, role=MessageRole.USER, content=f"question {i}")
        answers.append(ChatMessage.objects.create(session=session, role=MessageRole.ASSISTANT))
        UsageRecordFactory(
            org=org, session=session, message=answers[-1], input_tokens=tokens, output_tokens=0
        )
        UsageRecordFactory(org=org, session=session, message=answers[-1], input_tokens=1, output_tokens=0)
    period = budget_period_current(org=org)
    with django_assert_num_queries(1):
        top = [
            (m.question, m.tokens, m.calls, m.session.user.email)
            for m in usage_top_questions(org=org, period=period)
        ]
    assert top == [("question 1", 901, 2, "analyst@acme.test"), ("question 0", 301, 2, "analyst@acme.test")]


def test_the_picker_offers_the_current_period_and_those_with_ledger_rows_newest_first(personas):
    org = personas.org
    current = budget_period_current(org=org, at=at(5, 0))
    october = budget_period_current(org=org, at=datetime.datetime(2026, 10, 9, tzinfo=UTC))
    budget_period_current(org=org, at=datetime.datetime(2026, 9, 9, tzinfo=UTC))  # nothing used
    august = budget_period_current(org=org, at=datetime.datetime(2026, 8, 9, tzinfo=UTC))
    UsageRecordFactory(org=org, created_at=datetime.datetime(2026, 10, 31, 23, tzinfo=UTC))
    UsageRecordFactory(org=org, created_at=datetime.datetime(2026, 8, 1, 0, tzinfo=UTC), input_tokens=0)
    UsageRecordFactory(org=personas.other_org, created_at=datetime.datetime(2026, 9, 9, tzinfo=UTC))
    assert budget_periods_with_usage(org=org, current=current) == [current, october, august]
