"""Checking and normalising a value a caller gives to a ``collect`` node.

``digits`` accepts digits with spaces, dashes and dots between them, and spoken digit words
("four two", "oh") as a speech recogniser writes them, and stores only the digits. ``email`` accepts
the usual shape (and the spoken "name at example dot com"); the stored value is trimmed with a
lower-cased domain. ``regex`` must match the whole (trimmed) input. Lengths count the stored value.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .model import CollectValue

_SPOKEN_DIGITS = {
    "zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "to": "2", "too": "2", "three": "3",
    "four": "4", "for": "4", "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9",
}
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
_SEPARATORS = re.compile(r"[\s.\-,()]+")


@lru_cache(maxsize=512)
def _fullmatch(pattern: str) -> re.Pattern:
    return re.compile(pattern)


def spoken_digits(text: str) -> str | None:
    """``"four 2 one"`` -> ``"421"``; None when anything is not a digit or a digit word."""
    out = []
    for word in _SEPARATORS.split(text.strip().casefold()):
        if not word:
            continue
        if word.isdigit() and word.isascii():
            out.append(word)
        elif word in _SPOKEN_DIGITS:
            out.append(_SPOKEN_DIGITS[word])
        else:
            return None
    return "".join(out) or None


def _email(text: str) -> str | None:
    candidate = text.strip()
    if "@" not in candidate:             # spoken form: "jane at example dot com"
        words = candidate.casefold().split()
        candidate = "".join("@" if w == "at" else "." if w == "dot" else w for w in words)
    if not _EMAIL.match(candidate):
        return None
    local, _, domain = candidate.rpartition("@")
    return f"{local}@{domain.lower()}"


def normalise(spec: CollectValue, raw: str) -> str | None:
    """The value to store for input ``raw``, or None when it does not pass ``spec``'s validation."""
    text = raw.strip()
    if spec.validation == "digits":
        value = spoken_digits(text)
    elif spec.validation == "email":
        value = _email(text)
    elif spec.validation == "regex":
        # Longer than any value may be (max_length <= 256): refuse before running the regex.
        fits = len(text) <= (spec.max_length or 256)
        value = text if fits and spec.pattern and _fullmatch(spec.pattern).fullmatch(text) \
            else None
    else:
        value = text or None
    if value is None or len(value) < spec.min_length:
        return None
    if spec.max_length is not None and len(value) > spec.max_length:
        return None
    return value
