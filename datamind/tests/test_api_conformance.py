"""The API against its own schema: schemathesis generates requests from `/api/schema/` for every
operation, sends them to the app with an admin's JWT, and checks that no answer is a 5xx and that
every answer (status, content type, headers, body) is one the schema documents.

Bounded for `make test`: a fixed number of examples per operation, the same on every run (about
30 s in all on a 2-core machine), no shrinking. The operations left out reach outside the process
on valid input (DNS for a connection's host, the language model) and are covered by their apps'
own tests.
"""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, connections
from hypothesis import HealthCheck, Phase
from hypothesis import settings as hypothesis_settings
from openapi_spec_validator import validate
from rest_framework_simplejwt.tokens import RefreshToken
from schemathesis import checks

from datamind.lib.testing import Personas
from datamind.wsgi import application

EXAMPLES_PER_OPERATION = 25
# Checks about which *inputs* must be accepted, which a schema cannot fully say: DRF coerces
# scalars on purpose (0 is accepted as the string "0"; a form without a checkbox means false), and
# a well-formed refresh token can still be invalid. What comes back is checked in full.
INPUT_SEMANTICS = [checks.negative_data_rejection, checks.positive_data_acceptance]
REACH_OUTSIDE = [
    "v1_connections_create",  # resolves the connection's host name
    "v1_connections_update",
    "v1_connections_partial_update",
    "v1_chat_ask_create",  # asks the language model
]


# Loaded when the module is collected (Django is set up by then; serving the schema needs no
# database). schemathesis's lazy `from_fixture` loader does not work with pytest 9.
schema = schemathesis.openapi.from_wsgi("/api/schema/?format=json", application)
# Serving it may have opened a database connection outside any test; a later test without database
# access would trip over it when Django tidies connections at the end of a request.
connections.close_all()


@pytest.fixture
def keep_test_connection(db):
    """As Django's test client does: requests must not close the test's database connection (it
    holds the transaction every test is rolled back in)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


def test_the_served_schema_passes_an_independent_openapi_validator(client, db):
    document = client.get("/api/schema/", {"format": "json"}).json()

    validate(document)


@schema.exclude(operation_id=REACH_OUTSIDE).parametrize()
@hypothesis_settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    # The same examples on every run and machine: a failure in CI reproduces locally.
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)
def test_every_operation_answers_as_its_schema_says(case, personas: Personas, keep_test_connection):
    token = RefreshToken.for_user(personas.admin).access_token
    case.call_and_validate(headers={"Authorization": f"Bearer {token}"}, excluded_checks=INPUT_SEMANTICS)
