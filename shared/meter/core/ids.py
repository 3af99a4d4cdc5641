"""Identifier text: one spelling per name, and nothing a screen hides or reorders.

``"José"`` typed on a Mac (NFD: ``e`` + combining accent) and on Windows (NFC: ``é``) is one end
user, so every id and identifier is NFC-normalized where it enters, on ingest and on every read
path, and either spelling finds the same totals. Control, format (bidi overrides such as U+202E,
zero-width characters), surrogate and private-use characters are refused: they make two ids
that look the same, or a log line that reads backwards.
"""

from __future__ import annotations

import unicodedata

REFUSED_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})


def refused_character(value: str) -> str | None:
    """The first character ``value`` may not hold, as ``U+XXXX``, or None."""
    for character in value:
        if unicodedata.category(character) in REFUSED_CATEGORIES:
            return f"U+{ord(character):04X}"
    return None


def normal(value: str) -> str:
    """``value`` in NFC (as stored and looked up)."""
    return value if unicodedata.is_normalized("NFC", value) else unicodedata.normalize("NFC", value)


def checked(value: str) -> str:
    """``value`` in NFC; ValueError naming the first refused character."""
    found = refused_character(value)
    if found:
        raise ValueError(f"must not hold control, format or invisible characters (found {found})")
    return normal(value)
