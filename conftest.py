import pytest

from apps.accounts.models import Role
from apps.accounts.tests.factories import OrganizationFactory, UserFactory
from datamind.lib.testing import PASSWORD, Personas


@pytest.fixture
def personas(db) -> Personas:
    org = OrganizationFactory(name="Acme", slug="acme")
    other_org = OrganizationFactory(name="Globex", slug="globex")
    return Personas(
        org=org,
        admin=UserFactory(org=org, role=Role.ADMIN, email="admin@acme.test"),
        analyst=UserFactory(org=org, role=Role.ANALYST, email="analyst@acme.test"),
        viewer=UserFactory(org=org, role=Role.VIEWER, email="viewer@acme.test"),
        other_org=other_org,
        outsider=UserFactory(org=other_org, role=Role.ADMIN, email="admin@globex.test"),
    )


@pytest.fixture
def password() -> str:
    return PASSWORD


@pytest.fixture(autouse=True)
def _clear_cache():
    """Rate-limit counters and cached results live in the cache (Redis db 15 in tests)."""
    from django.core.cache import cache

    cache.clear()
    yield
