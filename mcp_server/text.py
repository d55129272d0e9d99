"""Small wording helpers, so messages read right for one and for many ("1 image", "an image model")."""

from __future__ import annotations


def plural(count: int | float, noun: str, many: str | None = None) -> str:
    """`1 image`, `2 images`, `1,024 tokens`: the count with thousands separators and the noun in agreement."""
    word = noun if count == 1 else many or f"{noun}s"
    return f"{count:,} {word}" if isinstance(count, int) else f"{count:,g} {word}"


def a_or_an(word: str) -> str:
    """`a chat`, `an image`: the indefinite article genroute's kinds and nouns need (by first letter)."""
    return f"an {word}" if word[:1].lower() in "aeiou" else f"a {word}"
