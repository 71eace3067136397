"""perdure's HTTP surface: an ASGI app to resume hooks, feed webhooks and steer runs.

Serve it on its own::

    from perdure import Engine
    from perdure.http import create_app

    app = create_app(Engine("sqlite:///app.db", public_url="https://example.com"))
    # uvicorn module:app  (the app enters the Engine for its lifetime)

or mount it in a FastAPI or Starlette app (``app.mount("/perdure", create_app(engine))``)
and enter the Engine in that app's lifespan: mounted apps get no lifespan of their own.

Endpoints (JSON; ``GET /openapi.json`` describes them):

- ``POST /hooks/{token}/resume``: resume a hook made with ``hook.create()``;
- ``GET|POST|PUT|PATCH|DELETE /webhooks/{token}``: feed a webhook (`create_webhook`);
- ``POST /runs``, ``GET /runs``, ``GET /runs/{id}``, ``GET /runs/{id}/events``,
  ``GET /runs/{id}/timeline``, ``POST /runs/{id}/cancel``, ``POST /runs/{id}/rerun``,
  ``POST /runs/{id}/fork``;
- ``GET /hooks?run=``: live hooks.

The web dashboard (`perdure.web`) is served by the same app: ``/`` lists runs, and
``/runs/{id}`` answers a browser asking for HTML with the run's page.

With a token (``create_app(engine, token=...)`` or ``$PERDURE_API_TOKEN``) every
endpoint but the webhooks and the OpenAPI document needs ``Authorization: Bearer ...``;
browsers sign in at ``/login`` instead (see `perdure.http._dashboard`). Without one,
the app answers only requests naming this machine or the public URL's host
(``allowed_hosts``; see `perdure.http._guard`).
"""

from perdure._hooks import Webhook, WebhookRequest
from perdure.http._app import create_app

__all__ = ["Webhook", "WebhookRequest", "create_app"]
