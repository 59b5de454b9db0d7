"""The words of a question, as the parser reads them."""

import re
from dataclasses import dataclass

from apps.chat.providers.builtin.vocabulary import NUMBER_WORDS, singular

_TOKEN = re.compile(r"\d{4}-\d{2}-\d{2}|\w+(?:['’]\w+)*|[&#/+=]")


@dataclass
class Token:
    """A word of the question: as typed, lowercased (without a possessive 's), and singular.
    `used` is set by the parser pass that recognised it."""

    text: str
    low: str
    word: str
    start: int
    end: int
    used: bool = False


def tokenize(text: str) -> list[Token]:
    tokens = []
    for match in _TOKEN.finditer(text):
        raw = match.group(0)
        low = raw.lower().replace("’", "'")
        if low.endswith("'s") and len(low) > 2:
            low = low[:-2]
        tokens.append(Token(text=raw, low=low, word=singular(low), start=match.start(), end=match.end()))
    return tokens


def value_key(value: str) -> tuple[str, ...]:
    """How a catalogue value is matched against the question: its lowercase tokens."""
    return tuple(token.low for token in tokenize(value))


def number(token: Token) -> int | None:
    """A count written as digits or a word ("top five"); never a year."""
    if token.low.isdigit() and len(token.low) <= 4:
        value = int(token.low)
        return value if 0 < value <= 1000 and not is_year(token) else None
    return NUMBER_WORDS.get(token.low)


def is_year(token: Token) -> bool:
    return token.low.isdigit() and len(token.low) == 4 and 1900 <= int(token.low) <= 2100
