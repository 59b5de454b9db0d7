"""The usage ledger: one UsageRecord per language-model call."""

from django.db import transaction

from apps.accounts.models import Organization, User
from apps.billing.models import UsageRecord


@transaction.atomic
def usage_record(
    *,
    org: Organization,
    user: User | None,
    provider: str,
    model: str,
    purpose: str,
    input_tokens: int,
    output_tokens: int,
    session_id: int | None = None,
    message_id: int | None = None,
) -> UsageRecord:
    """Write one LLM call to the ledger outside the budget (calls that reserve use `budget_settle`)."""
    return UsageRecord.objects.create(
        org=org,
        user=user,
        session_id=session_id,
        message_id=message_id,
        provider=provider,
        model=model,
        purpose=purpose,
        input_tokens=input_tokens,
        output_tokens=output_tokens,
    )
