"""Evaluating a ``condition`` node's rules: pure functions of the variables and the local time.

Comparisons work on text (``to_text`` of the variable): ``equals``/``not_equals``/``in`` compare
strings (optionally case-insensitively), ``regex`` searches, ``lt``/``le``/``gt``/``ge`` compare as
numbers (a value that is not a number makes the rule false), ``exists`` means set and non-empty,
``time_between`` checks the local time (``from`` inclusive, ``to`` exclusive; a window may cross
midnight) and optionally the weekday. String values in rules are templates (``"{{other}}"``).
"""
from __future__ import annotations

import datetime as dt
import math
import re
from functools import lru_cache
from typing import Any, Callable

from .model import WEEKDAYS, ConditionNode, Rule
from .template import MISSING, render, to_text

Resolve = Callable[[str], Any]


@lru_cache(maxsize=512)
def compiled(pattern: str, flags: int = 0) -> re.Pattern:
    return re.compile(pattern, flags)


def _number(text: str) -> float | None:
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def in_window(rule: Rule, local: dt.datetime) -> bool:
    if rule.days is not None and WEEKDAYS[local.weekday()] not in rule.days:
        return False
    start = _minutes(rule.from_ or "00:00")
    end = _minutes(rule.to or "00:00")
    now = local.hour * 60 + local.minute
    if start == end:
        return True                        # a full day
    if start < end:
        return start <= now < end
    return now >= start or now < end       # crosses midnight


def _compare(rule: Rule, actual: str, resolve: Resolve) -> bool:
    def expected(v: Any) -> str:
        return render(v, resolve) if isinstance(v, str) else to_text(v)

    op = rule.op
    if op in ("equals", "not_equals", "in"):
        fold = str.casefold if rule.ignore_case else (lambda s: s)
        values = rule.value if isinstance(rule.value, list) else [rule.value]
        hit = fold(actual.strip()) in {fold(expected(v).strip()) for v in values}
        return not hit if op == "not_equals" else hit
    if op == "regex":
        flags = re.IGNORECASE if rule.ignore_case else 0
        return compiled(str(rule.value), flags).search(actual) is not None
    a, b = _number(actual), _number(expected(rule.value))
    if a is None or b is None:
        return False
    return {"lt": a < b, "le": a <= b, "gt": a > b, "ge": a >= b}[op]


def matches(rule: Rule, resolve: Resolve, local: dt.datetime) -> bool:
    """Whether ``rule`` holds; ``negate`` flips the result."""
    if rule.op == "time_between":
        hit = in_window(rule, local)
    else:
        value = resolve(rule.var) if rule.var else MISSING
        if rule.op == "exists":
            hit = value is not MISSING and to_text(value) != ""
        else:
            hit = value is not MISSING and _compare(rule, to_text(value), resolve)
    return not hit if rule.negate else hit


def choose(node: ConditionNode, resolve: Resolve, local: dt.datetime) -> str:
    """The target of the first rule that holds, else ``default``."""
    for rule in node.rules:
        if matches(rule, resolve, local):
            return rule.next
    return node.default
