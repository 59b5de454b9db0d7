from dataclasses import dataclass
from typing import Any

from django import template

from apps.chat.models import ChatMessage

register = template.Library()

ROWS_PER_PAGE = 25


@dataclass
class RowsPage:
    rows: list[list[Any]]
    number: int
    pages: int

    @property
    def has_previous(self) -> bool:
        return self.number > 1

    @property
    def has_next(self) -> bool:
        return self.number < self.pages


@register.filter
def rows_page(message: ChatMessage, page: Any) -> RowsPage:
    """One page of an answer's stored preview rows."""
    pages = max(1, -(-len(message.rows) // ROWS_PER_PAGE))
    try:
        number = min(max(1, int(page)), pages)
    except (TypeError, ValueError):
        number = 1
    start = (number - 1) * ROWS_PER_PAGE
    return RowsPage(rows=message.rows[start : start + ROWS_PER_PAGE], number=number, pages=pages)
