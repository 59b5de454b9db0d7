import factory

from apps.accounts.tests.factories import OrganizationFactory
from apps.connections.models import Connection, Engine


class ConnectionFactory(factory.django.DjangoModelFactory):
    """A Postgres connection to the local server's `postgres` database (never DataMind's own)."""

    class Meta:
        model = Connection

    org = factory.SubFactory(OrganizationFactory)
    name = factory.Sequence(lambda n: f"Warehouse {n}")
    engine = Engine.POSTGRESQL
    host = "127.0.0.1"
    port = 5432
    database = "postgres"
    username = "postgres"
    password = ""
