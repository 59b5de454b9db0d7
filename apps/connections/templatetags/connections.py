"""How catalogue entries and query results read on the connection pages."""

import json
import re
from typing import Any

from django import template

from apps.accounts.models import Role, User
from apps.connections.models import Connection

register = template.Library()

_ANCHOR_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]+")


@register.filter
def at_least(user: User, role: str) -> bool:
    """`{% if user|at_least:"analyst" %}`: the same rule as the views' role_required."""
    return bool(user.is_authenticated and user.has_role(Role(role)))


@register.filter
def table_anchor(qualified_name: str) -> str:
    """The id of a table's entry in the schema browser, from its schema.table name."""
    return "table-" + _ANCHOR_UNSAFE.sub("-", qualified_name)


@register.filter
def reference(references: str) -> dict[str, str]:
    """A foreign key's target, "schema.table.column" (or "table.column"), taken apart."""
    table, _, column = references.rpartition(".")
    return {"table": table, "name": table.rpartition(".")[2], "column": column, "anchor": table_anchor(table)}


@register.filter
def cell(value: Any) -> str:
    """A result value as text: JSON for arrays and objects, true/false for booleans."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


@register.filter
def option(connection: Connection, name: str) -> Any:
    """A connection option, or its default when it was never set."""
    return connection.option(name)


@register.filter
def is_number(value: Any) -> bool:
    """Numbers are right-aligned in results, so digits line up."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
