"""Checks msgspec types cannot express: origins, URLs, channel type/provider combinations."""
from __future__ import annotations

import urllib.parse

from control.api.errors import validation
from control.models import PROVIDERS_BY_TYPE


def origin(value: str, field: str) -> str:
    """``scheme://host[:port]`` (http/https), nothing else; returned normalised (lower case)."""
    try:
        u = urllib.parse.urlsplit(value.strip())
        port = u.port
    except ValueError:
        raise validation(f"{value!r} is not an origin (want scheme://host[:port])", field) from None
    if u.scheme not in ("http", "https") or not u.hostname or u.username or u.password \
            or u.path not in ("", "/") or u.query or u.fragment:
        raise validation(f"{value!r} is not an origin (want http(s)://host[:port], no path)", field)
    host = u.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{u.scheme}://{host}" + (f":{port}" if port is not None else "")


def origins(values: list[str], prefix: str = "$.allowed_origins") -> list[str]:
    out: list[str] = []
    for i, v in enumerate(values):
        o = origin(v, f"{prefix}[{i}]")
        if o not in out:
            out.append(o)
    return out


def url(value: str, schemes: tuple[str, ...], field: str) -> str:
    try:
        u = urllib.parse.urlsplit(value)
        u.port
    except ValueError:
        raise validation(f"{value!r} is not a URL", field) from None
    if u.scheme not in schemes or not u.hostname:
        raise validation(f"want a {' or '.join(s + '://' for s in schemes)} URL with a host", field)
    return value


def type_and_provider(ctype: str, provider: str | None) -> None:
    allowed = PROVIDERS_BY_TYPE[ctype]
    if not allowed:
        if provider is not None:
            raise validation(f"{ctype} channels have no provider", "$.provider")
        return
    if provider is None:
        raise validation(f"{ctype} channels need a provider: one of {', '.join(allowed)}", "$.provider")
    if provider not in allowed:
        raise validation(f"provider {provider!r} does not serve {ctype} channels "
                         f"(use one of {', '.join(allowed)})", "$.provider")
