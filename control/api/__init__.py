"""The control plane's Quart-trio app.

Adding a blueprint is one line: append it to :data:`BLUEPRINTS` (or pass ``extra_blueprints`` to
:func:`create_app`). Blueprints declared with :func:`control.api.routing.operation` also appear in
``/api/v1/openapi.json``. Handlers reach settings/store/directory through
``control.api.state.state()``.
"""
from __future__ import annotations

from quart import request
from quart_trio import QuartTrio

from control.api import agents_flows, channels, errors, health, keys, openapi, webhooks, widget
from control.api import voice_webhooks  # noqa: F401  (registers the voice webhook handlers)
from control.api.metrics import HTTP_REQUESTS
from control.api.state import STATE_KEY, AppState
from control.api.webhooks import WebhookContext, register_webhook_handler, webhook_handler
from control.config import Settings
from control.store import Store
from control.store.directory import StoreDirectory

__all__ = ["create_app", "BLUEPRINTS", "register_webhook_handler", "webhook_handler",
           "WebhookContext", "AppState"]

BLUEPRINTS = [health.bp, openapi.bp, channels.bp, agents_flows.bp, keys.bp, webhooks.bp,
              widget.widget_bp]


def _feature_blueprints() -> list:
    """Blueprints of modules that import control.api's submodules themselves (so importing them
    here at module level would be circular); importing them also registers their webhook handlers."""
    from control import console                               # admin console
    from control.api import transfer                          # Plivo fetches a transfer's <Dial>
    from control.messaging import api as messaging_api        # WhatsApp/SMS messages
    return [messaging_api.bp, console.bp, transfer.bp]


async def _drain_body():
    """Read the request body before anything can answer early (401, 404, 405, 422).

    Measured: with Hypercorn 0.18 a response sent while the request body is still unread leaves
    the keep-alive connection stuck now and then (the client's next request never gets an
    answer). Bodies are capped by MAX_CONTENT_LENGTH, so draining is bounded."""
    await request.get_data(cache=True)   # any method may carry a body (OPTIONS, GET, ...)


async def _count_request(response):
    rule = request.url_rule.rule if request.url_rule is not None else "unmatched"
    HTTP_REQUESTS.inc(method=request.method, route=rule, status=response.status_code)
    return response


def create_app(settings: Settings, store: Store, *, directory: StoreDirectory | None = None,
               extra_blueprints=()) -> QuartTrio:
    app = QuartTrio("converse.control")
    app.config[STATE_KEY] = AppState(settings, store, directory or StoreDirectory(store))
    app.config["MAX_CONTENT_LENGTH"] = errors.MAX_BODY_BYTES
    app.config["PROPAGATE_EXCEPTIONS"] = False
    errors.install(app)
    for bp in [*BLUEPRINTS, *_feature_blueprints(), *extra_blueprints]:
        app.register_blueprint(bp)
    app.before_request(_drain_body)
    app.after_request(_count_request)
    return app
