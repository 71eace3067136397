"""perdure's HTTP API and webhooks, mounted in a FastAPI app under ``/perdure``.

Run it (it uses $PERDURE_DATABASE_URL, else .perdure/perdure.db)::

    uvicorn fastapi_app:app --app-dir examples

then place an order; its run waits on a webhook, whose URL the payment step prints::

    curl -X POST localhost:8000/orders/42
    curl -d '{"paid": 42.0}' localhost:8000/perdure/webhooks/TOKEN   # 200 {"received": true}
    curl localhost:8000/perdure/runs/order-42

perdure's endpoints live under /perdure (see /perdure/openapi.json); set
$PERDURE_API_TOKEN to require a bearer token on all of them but the webhooks.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from perdure import Engine, create_webhook, step, workflow
from perdure.http import create_app

if TYPE_CHECKING:
    from collections.abc import AsyncIterator


@step
async def ask_for_payment(order_id: str, callback_url: str) -> None:
    """Stand-in for a payment provider's API call that takes a callback URL."""
    print(f"order {order_id}: the payment provider will call {callback_url}")


@workflow(name="fastapi-order")
async def order(order_id: str) -> dict[str, Any]:
    """Ask for a payment, then wait (durably, for days if need be) for its webhook."""
    webhook = create_webhook(respond_with=200, body={"received": True})
    await ask_for_payment(order_id, webhook.url)
    request = await webhook
    return {"order": order_id, "payment": request.json()}


def build_app(engine: Engine) -> FastAPI:
    """The FastAPI app: its own routes, and perdure's under /perdure.

    A mounted app gets no lifespan of its own, so this app enters the Engine in its.
    """

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        async with engine:
            yield

    app = FastAPI(title="shop", lifespan=lifespan)
    app.mount("/perdure", create_app(engine))

    @app.post("/orders/{order_id}")
    async def place_order(order_id: str) -> dict[str, str]:
        run = await engine.start(order, order_id, run_id=f"order-{order_id}")
        return {"run_id": run.id}

    return app


app = build_app(
    Engine(public_url=os.environ.get("PERDURE_PUBLIC_URL", "http://127.0.0.1:8000/perdure"))
)
