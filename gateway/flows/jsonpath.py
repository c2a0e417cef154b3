"""A small, safe JSONPath subset for ``api_call`` extraction: ``$``, ``.key``, ``['key']``, ``[N]``.

No filters, wildcards, recursion or scripts: a path names exactly one value, so extraction is a
plain walk over dicts and lists and cannot be made expensive by an operator or an API response.
Negative indices count from the end (``$.items[-1]``).
"""
from __future__ import annotations

import re
from typing import Any

from .template import MISSING

_STEP = re.compile(
    r"""\.(?P<key>[A-Za-z_][A-Za-z0-9_-]*)        # .key
      | \[\s*(?P<idx>-?\d{1,6})\s*\]              # [0], [-1]
      | \[\s*'(?P<sq>[^'\\]{0,200})'\s*\]         # ['any key']
      | \[\s*"(?P<dq>[^"\\]{0,200})"\s*\]         # ["any key"]
    """,
    re.X,
)
MAX_STEPS = 32


class JsonPathError(ValueError):
    pass


def parse(path: str) -> tuple[str | int, ...]:
    """``"$.a.b[0]"`` -> ``("a", "b", 0)``; :class:`JsonPathError` says what is wrong."""
    if not isinstance(path, str) or not path.startswith("$"):
        raise JsonPathError("a JSON path starts with '$'")
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise JsonPathError(f"unsupported syntax at character {pos}: {path[pos:pos + 20]!r} "
                                "(supported: .key, ['key'], [N])")
        if m.group("idx") is not None:
            steps.append(int(m.group("idx")))
        else:
            steps.append(m.group("key") or m.group("sq") or m.group("dq") or "")
        pos = m.end()
        if len(steps) > MAX_STEPS:
            raise JsonPathError(f"more than {MAX_STEPS} steps")
    return tuple(steps)


def extract(document: Any, steps: tuple[str | int, ...]) -> Any:
    """The value at ``steps`` in ``document``, or :data:`MISSING`."""
    cur = document
    for step in steps:
        if isinstance(step, int):
            if not isinstance(cur, list) or not -len(cur) <= step < len(cur):
                return MISSING
            cur = cur[step]
        else:
            if not isinstance(cur, dict) or step not in cur:
                return MISSING
            cur = cur[step]
    return cur
