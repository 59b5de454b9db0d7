"""Personas shared by every app's tests: an admin, an analyst and a viewer of one org, and an
outsider (an admin of another org). Imported by the root conftest as fixtures."""

from dataclasses import dataclass

from apps.accounts.models import Organization, User

PASSWORD = "correct-horse-battery-staple"  # noqa: S105 - the test personas' password


@dataclass
class Personas:
    org: Organization
    admin: User
    analyst: User
    viewer: User
    other_org: Organization
    outsider: User
