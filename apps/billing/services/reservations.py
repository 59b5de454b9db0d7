"""The reservation protocol for one LLM call: reserve before it, settle after, release on failure.

`budget_reserve` refuses when the org's month is spent; `budget_settle` replaces the hold with
the tokens actually used and writes the ledger row; `budget_release` gives the hold back.

On Postgres, reserve and settle are each ONE statement (data-modifying CTEs) run outside any
transaction block. Why: every question of an org updates the same period row, so they queue on its
row lock, and a lock taken inside a transaction is held until the client sends COMMIT. From
Python that is at least one more round trip, and with fifty threads it also means waiting for the
GIL between the UPDATE's reply and the COMMIT: the lock was held for milliseconds and fifty
questions queued behind each other (bench/billing.py measured ~0.4 s p95 added). A single
statement in autocommit holds the lock only while the server runs it and flushes its commit.
It also replaces a dozen ORM queries with two round trips, and prices the call in the same
statement instead of a separate lookup. Other databases (SQLite in the embedded default, which
serialises writers anyway) run the same protocol as ORM queries in a transaction.
"""

import datetime
from decimal import Decimal
from typing import Any, NamedTuple

import structlog
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.formats import date_format

from apps.accounts.models import Organization, User
from apps.billing.models import BudgetPeriod, ModelPrice, Reservation, UsageRecord
from apps.billing.services.periods import budget_period_current, period_start
from apps.billing.services.warnings import org_admins, warnings_due, warnings_send
from datamind.lib.exceptions import DataMindError

logger = structlog.get_logger(__name__)

# Long enough for the slowest question (generation, bounded repairs, analysis); short enough that a
# crashed worker's hold is given back within minutes, not at the end of the month.
RESERVATION_TTL = datetime.timedelta(minutes=15)


class BudgetExhausted(DataMindError):
    """The organisation's monthly token budget is spent.

    429 rather than 402: this is a quota that resets at a known time, which is what 429 means to
    HTTP clients and SDKs (stop, try later), and the remedy is usually an admin raising the limit,
    not a payment; 402 has no standard semantics. Not retryable: trying again in a minute won't help.
    """

    code = "budget_exhausted"
    status = 429
    retryable = False


def _one_statement() -> bool:
    return connection.vendor == "postgresql"


# Reserve ------------------------------------------------------------------------------------------

# The check and the hold in one conditional UPDATE: Postgres re-evaluates the WHERE against the
# latest committed row after waiting for its lock, so concurrent reservations queue up and the
# last ones see there is no room left. The reservation row is inserted only if the hold was taken.
# A zero-token reservation (the built-in engine) always goes through, even when the month is spent.
# `relaxed`: a hold need not survive a database crash (Postgres then restores a state in which the
# row and the counter were never written, together; settling a lost hold still counts its tokens),
# so its commit does not wait for the WAL flush, which the period row's lock would be held through.
# It is transaction-local: in autocommit it ends with this statement; the settlement stays durable.
_RESERVE_SQL = """
WITH relaxed AS (
    SELECT set_config('synchronous_commit', 'off', true)
), held AS (
    UPDATE billing_budgetperiod SET reserved = reserved + %(amount)s
    WHERE org_id = %(org)s AND period_start = %(start)s
      AND (%(amount)s = 0 OR used + reserved + %(amount)s <= budget)
    RETURNING id
)
INSERT INTO billing_reservation (org_id, period_id, user_id, amount, created_at, expires_at)
SELECT %(org)s, held.id, %(user)s, %(amount)s, %(now)s, %(expires)s FROM held, relaxed
RETURNING *
"""


def _hold(*, org: Organization, user: User | None, amount: int) -> Reservation | None:
    """Take the hold in the org's current period; None if it does not fit or the period is not open."""
    now = timezone.now()
    params = {
        "org": org.pk,
        "user": user.pk if user else None,
        "amount": amount,
        "start": period_start(org=org, at=now),
        "now": now,
        "expires": now + RESERVATION_TTL,
    }
    if _one_statement():
        return next(iter(Reservation.objects.raw(_RESERVE_SQL, params)), None)
    with transaction.atomic():
        period = BudgetPeriod.objects.filter(org=org, period_start=params["start"])
        room = period.filter(used__lte=F("budget") - F("reserved") - amount) if amount else period
        if not room.update(reserved=F("reserved") + amount):
            return None
        return Reservation.objects.create(
            org=org,
            period_id=period.values_list("pk", flat=True).get(),
            user=user,
            amount=amount,
            created_at=now,
            expires_at=params["expires"],
        )


def _exhausted_message(*, org: Organization, period: BudgetPeriod, amount: int) -> str:
    left = max(period.budget - period.used - period.reserved, 0)
    resets = date_format(period.period_end, "j F Y")
    admins = org_admins(org)
    if admins:
        names = ", ".join(f"{a.full_name} <{a.email}>" if a.full_name else a.email for a in admins)
        whom = f"To raise the limit, ask an admin of {org.name}: {names}."
    else:
        whom = f"{org.name} has no admin yet; ask your DataMind operator to raise the limit."
    if left == 0:
        state = f"{org.name} has used its {period.budget:,} tokens for this month"
    else:
        state = (
            f"{org.name} has {left:,} of its {period.budget:,} monthly tokens left, "
            f"and this question may need up to {amount:,}"
        )
    return f"{state}. The budget resets on {resets}. {whom}"


def budget_reserve(*, org: Organization, user: User | None, amount: int) -> Reservation:
    """Hold `amount` tokens for one call, or raise BudgetExhausted.

    Zero-token reservations (the built-in engine) always succeed, even when the month is spent.
    """
    if amount < 0:
        raise ValueError("A reservation cannot be negative.")
    reservation = _hold(org=org, user=user, amount=amount)
    if reservation is not None:
        return reservation
    # Either the month is spent or its period is not open yet (the first call of the month and
    # the roll-over task has not run): open it and try once more.
    period = budget_period_current(org=org)
    reservation = _hold(org=org, user=user, amount=amount)
    if reservation is not None:
        return reservation
    period.refresh_from_db(fields=["budget", "used", "reserved"])
    raise BudgetExhausted(_exhausted_message(org=org, period=period, amount=amount))


# Settle -------------------------------------------------------------------------------------------


class Settled(NamedTuple):
    record: UsageRecord
    due: list[int]  # warning levels crossed and not yet claimed


# Claim the open reservation (FOR UPDATE: a concurrent settle of the same reservation waits, then
# finds it settled and does nothing), write the ledger row priced from the price table, link it,
# and move the tokens from `reserved` to `used` on the period row, whose lock comes last. A hold
# the expiry sweep already released still has its tokens counted (they were spent) but gives
# nothing back. No row comes back when there was nothing to claim.
_SETTLE_SQL = """
WITH claim AS (
    SELECT id, period_id, CASE WHEN released_at IS NULL THEN amount ELSE 0 END AS held
    FROM billing_reservation
    WHERE id = %(reservation)s AND settled_at IS NULL
    FOR UPDATE
), record AS (
    INSERT INTO billing_usagerecord (
        org_id, user_id, session_id, message_id, provider, model, purpose,
        input_tokens, output_tokens, estimated_cost, created_at
    )
    SELECT %(org)s, %(user)s, %(session)s, %(message)s, %(provider)s, %(model)s, %(purpose)s,
        %(input)s, %(output)s,
        COALESCE((
            SELECT round((%(input)s * price.input_per_million + %(output)s * price.output_per_million)
                / 1000000, 6)
            FROM billing_modelprice price
            WHERE price.provider = %(provider)s AND price.model = %(model)s
        ), 0),
        %(now)s
    FROM claim
    RETURNING *
), settled AS (
    UPDATE billing_reservation SET settled_at = %(now)s, usage_record_id = record.id
    FROM record WHERE billing_reservation.id = %(reservation)s
), period AS (
    UPDATE billing_budgetperiod
    SET reserved = reserved - claim.held, used = used + %(input)s + %(output)s
    FROM claim WHERE billing_budgetperiod.id = claim.period_id
    RETURNING billing_budgetperiod.budget, billing_budgetperiod.used,
        billing_budgetperiod.warned_80_at IS NOT NULL AS warned_80,
        billing_budgetperiod.warned_100_at IS NOT NULL AS warned_100
)
SELECT record.*, period.* FROM record CROSS JOIN period
"""


def _settle_in_one_statement(reservation: Reservation, fields: dict[str, Any]) -> Settled | None:
    params = {
        "reservation": reservation.pk,
        "org": fields["org_id"],
        "user": fields["user"].pk if fields["user"] else None,
        "session": fields["session_id"],
        "message": fields["message_id"],
        "provider": fields["provider"],
        "model": fields["model"],
        "purpose": fields["purpose"],
        "input": fields["input_tokens"],
        "output": fields["output_tokens"],
        "now": fields["created_at"],
    }
    record = next(iter(UsageRecord.objects.raw(_SETTLE_SQL, params)), None)
    if record is None:
        return None
    # The period's columns come back on the record (RawQuerySet keeps unknown columns).
    due = warnings_due(
        budget=record.budget, used=record.used, warned_80=record.warned_80, warned_100=record.warned_100
    )
    return Settled(record, due)


def _estimated_cost(*, provider: str, model: str, input_tokens: int, output_tokens: int) -> Decimal:
    price = ModelPrice.objects.filter(provider=provider, model=model).first()
    if price is None:
        return Decimal(0)
    cost = (input_tokens * price.input_per_million + output_tokens * price.output_per_million) / 1_000_000
    return cost.quantize(Decimal("0.000001"))


@transaction.atomic
def _settle_in_transaction(reservation: Reservation, fields: dict[str, Any]) -> Settled:
    """The protocol as ORM queries: on databases other than Postgres, and on Postgres when the one
    statement found nothing to claim (a second settle, or a hold lost in a database crash)."""
    cost = _estimated_cost(
        provider=fields["provider"],
        model=fields["model"],
        input_tokens=fields["input_tokens"],
        output_tokens=fields["output_tokens"],
    )
    record = UsageRecord.objects.create(**fields, estimated_cost=cost)
    claim = {"settled_at": record.created_at, "usage_record": record}
    open_ = Reservation.objects.filter(pk=reservation.pk, settled_at__isnull=True)
    still_held = open_.filter(released_at__isnull=True).update(**claim)
    if not still_held and not open_.update(**claim):
        settled = Reservation.objects.select_related("usage_record").filter(pk=reservation.pk).first()
        if settled is not None and settled.usage_record is not None:
            # Settled before (a retried task): the first record stands, this one never happened.
            record.delete()
            return Settled(settled.usage_record, [])
        # Otherwise the hold was lost in a database crash: there is nothing to give back, but the
        # tokens were spent and are counted below.
    held = reservation.amount if still_held else 0
    periods = BudgetPeriod.objects.filter(pk=reservation.period_id)
    periods.update(reserved=F("reserved") - held, used=F("used") + record.total_tokens)
    period = periods.only("budget", "used", "warned_80_at", "warned_100_at").get()
    due = warnings_due(
        budget=period.budget,
        used=period.used,
        warned_80=period.warned_80_at is not None,
        warned_100=period.warned_100_at is not None,
    )
    return Settled(record, due)


def budget_settle(
    *,
    reservation: Reservation,
    input_tokens: int,
    output_tokens: int,
    provider: str,
    model: str,
    purpose: str,
    user: User | None,
    session_id: int | None = None,
    message_id: int | None = None,
) -> UsageRecord:
    """Replace the hold with the tokens actually used, write the ledger row, and warn if due.

    Settling twice returns the first usage record. A reservation the expiry sweep already
    released (a very slow call) still has its tokens counted: they were spent.
    """
    fields = {
        "org_id": reservation.org_id,
        "user": user,
        "session_id": session_id,
        "message_id": message_id,
        "provider": provider,
        "model": model,
        "purpose": purpose,
        "input_tokens": input_tokens,
        "output_tokens": output_tokens,
        "created_at": timezone.now(),
    }
    settled = _settle_in_one_statement(reservation, fields) if _one_statement() else None
    if settled is None:
        settled = _settle_in_transaction(reservation, fields)
    reservation.settled_at, reservation.usage_record = settled.record.created_at, settled.record
    if settled.due and settled.record.total_tokens:
        warnings_send(period_id=reservation.period_id, due=settled.due)
    return settled.record


# Release ------------------------------------------------------------------------------------------


# Close the reservation if it is still open and give its tokens back, in one statement for the
# same reason as the others: a burst of stopped questions must not hold the period row's lock
# across round trips. The count says whether this call was the one that released it.
_RELEASE_SQL = """
WITH released AS (
    UPDATE billing_reservation SET released_at = %(now)s
    WHERE id = %(reservation)s AND settled_at IS NULL AND released_at IS NULL
    RETURNING period_id, amount
), given_back AS (
    UPDATE billing_budgetperiod SET reserved = reserved - released.amount
    FROM released WHERE billing_budgetperiod.id = released.period_id AND released.amount > 0
)
SELECT count(*) FROM released
"""


@transaction.atomic
def _release_in_transaction(reservation: Reservation, now: datetime.datetime) -> bool:
    released = Reservation.objects.filter(
        pk=reservation.pk, settled_at__isnull=True, released_at__isnull=True
    ).update(released_at=now)
    if released and reservation.amount:
        BudgetPeriod.objects.filter(pk=reservation.period_id).update(
            reserved=F("reserved") - reservation.amount
        )
    return bool(released)


def budget_release(*, reservation: Reservation) -> bool:
    """Give back a hold whose call failed or was cancelled. Returns False if it was already closed.

    Idempotent: the conditional update lets exactly one caller (the pipeline, the expiry sweep,
    a retried task) give the tokens back.
    """
    now = timezone.now()
    if _one_statement():
        with connection.cursor() as cursor:
            cursor.execute(_RELEASE_SQL, {"reservation": reservation.pk, "now": now})
            released = bool(cursor.fetchone()[0])
    else:
        released = _release_in_transaction(reservation, now)
    if released:
        reservation.released_at = now
    return released


def reservations_expire(*, at: datetime.datetime | None = None) -> int:
    """Release every reservation past its expiry (its worker crashed). Returns how many."""
    expired = Reservation.objects.filter(
        settled_at__isnull=True, released_at__isnull=True, expires_at__lt=at or timezone.now()
    ).only("pk", "period_id", "amount")
    count = 0
    for reservation in expired.iterator():
        count += budget_release(reservation=reservation)
    if count:
        logger.warning("reservations_expired", count=count)
    return count
