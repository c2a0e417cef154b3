"""Embedded classification for ``classify`` nodes: keywords and regexes, first category wins.

Keywords match case-insensitively as whole words or phrases ("bill" matches "my bill is wrong", not
"billion"); a category's ``regex`` is searched case-insensitively. Categories are tried in order.
"""
from __future__ import annotations

import re
from functools import lru_cache

from .model import Category, ClassifyNode


@lru_cache(maxsize=1024)
def _keyword(word: str) -> re.Pattern:
    return re.compile(r"(?<!\w)" + re.escape(word.casefold().strip()) + r"(?!\w)")


@lru_cache(maxsize=512)
def _regex(pattern: str) -> re.Pattern:
    return re.compile(pattern, re.IGNORECASE)


def category_matches(category: Category, text: str) -> bool:
    folded = text.casefold()
    if any(_keyword(k).search(folded) for k in category.keywords if k.strip()):
        return True
    return category.regex is not None and _regex(category.regex).search(text) is not None


def classify(node: ClassifyNode, text: str) -> Category | None:
    """The first category whose keywords or regex match ``text``; None when none does."""
    for category in node.categories:
        if category_matches(category, text):
            return category
    return None


def by_name(node: ClassifyNode, name: str | None) -> Category | None:
    """The category an external classifier named (exact, then case-insensitive), or None."""
    if not name:
        return None
    for category in node.categories:
        if category.name == name:
            return category
    folded = name.casefold()
    return next((c for c in node.categories if c.name.casefold() == folded), None)
