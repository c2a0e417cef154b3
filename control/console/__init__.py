"""The admin console: the pages operators click through (Channels, Add Channel, Agents, Flows,
Activity), served by the control plane under ``/console``.

Pages are rendered on the server from the REST API's own handlers (:mod:`.bridge`); the small
script in ``/console/static/console.js`` performs actions through ``/console/api/v1/...``, the
same handlers again, authenticated by the session cookie and a CSRF token instead of a Bearer key,
and updates the page from the answers (no reload needed to see a status change).

``bp`` (the Quart blueprint) is imported lazily: the app factory imports this package while
``control.api`` is still initialising, and :mod:`.activity` must be importable on its own.
"""
from __future__ import annotations

__all__ = ["bp"]


def __getattr__(name: str):
    if name == "bp":
        import control.console.views  # noqa: F401  (adds the routes; may be mid-import already)
        from control.console.blueprint import bp
        return bp
    raise AttributeError(name)
