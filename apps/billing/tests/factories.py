from decimal import Decimal

import factory

from apps.accounts.tests.factories import OrganizationFactory
from apps.billing.models import BudgetSettings, ModelPrice, UsageRecord


class ModelPriceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ModelPrice

    provider = "anthropic"
    model = factory.Sequence(lambda n: f"claude-test-{n}")
    input_per_million = Decimal("3.00")
    output_per_million = Decimal("15.00")


class BudgetSettingsFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = BudgetSettings

    org = factory.SubFactory(OrganizationFactory)
    monthly_override = None


class UsageRecordFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = UsageRecord

    org = factory.SubFactory(OrganizationFactory)
    provider = "anthropic"
    model = "claude-test"
    purpose = "generation"
    input_tokens = 100
    output_tokens = 50
