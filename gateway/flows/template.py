"""``{{name}}`` / ``{{a.b}}`` templating: substitution only, no code, no attribute access.

A reference is a variable name followed by dict keys or list indices (``{{crm.orders.0.id}}``). It
walks plain dicts and lists only, never Python attributes, so a template cannot reach anything the
engine did not put into its variables. A missing variable (or key) renders as the empty string.
"""
from __future__ import annotations

import re
from typing import Any, Callable, Iterator

import msgspec

# `{{ name.key.0 }}`: whitespace inside the braces is allowed.
_REF = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)\s*\}\}")
# Anything that opens like a reference; validation reports those that are not a valid one.
_OPEN = re.compile(r"\{\{(.*?)(\}\}|$)", re.S)

MISSING = object()


def references(template: str) -> Iterator[str]:
    """The variable paths ``template`` refers to, in order (duplicates included)."""
    for m in _REF.finditer(template):
        yield m.group(1)


def malformed(template: str) -> list[str]:
    """The ``{{...}}`` fragments of ``template`` that are not valid references."""
    bad = []
    for m in _OPEN.finditer(template):
        if not _REF.fullmatch(m.group(0)):
            bad.append(m.group(0)[:40])
    return bad


def lookup_path(root: Any, keys: list[str]) -> Any:
    """Walk ``root`` through dict keys / list indices; :data:`MISSING` when any step is absent."""
    cur = root
    for key in keys:
        if isinstance(cur, dict):
            cur = cur.get(key, MISSING)
        elif isinstance(cur, list) and key.isdigit() and int(key) < len(cur):
            cur = cur[int(key)]
        else:
            return MISSING
        if cur is MISSING:
            return MISSING
    return cur


def to_text(value: Any) -> str:
    """How a variable value reads inside a message."""
    if value is None or value is MISSING:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, (dict, list)):
        return msgspec.json.encode(value).decode()
    return str(value)


def render(template: str, resolve: Callable[[str], Any]) -> str:
    """Substitute every reference; ``resolve(path)`` returns a value or :data:`MISSING`."""
    if "{{" not in template:
        return template
    return _REF.sub(lambda m: to_text(resolve(m.group(1))), template)


def render_json(value: Any, resolve: Callable[[str], Any]) -> Any:
    """Render every string inside a JSON value (keys stay literal)."""
    if isinstance(value, str):
        return render(value, resolve)
    if isinstance(value, list):
        return [render_json(v, resolve) for v in value]
    if isinstance(value, dict):
        return {k: render_json(v, resolve) for k, v in value.items()}
    return value


def json_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(path, string) for every string inside a JSON value: what validation checks as templates."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from json_strings(v, f"{path}.{i}")
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from json_strings(v, f"{path}.{k}")
