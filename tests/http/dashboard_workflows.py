"""Workflows the dashboard's tests run (tests/http/test_dashboard.py), also for `perdure web -m`.

`review_order` has what a timeline shows: steps, one retried after a failed attempt,
two steps in parallel, a sleep, and a hook that waits for a person's decision. Its
steps take a few hundred milliseconds each, so the bars have a visible length.
"""

from __future__ import annotations

import asyncio
from typing import Literal

import pydantic

from perdure import FatalError, RetryableError, define_hook, sleep, step, workflow

WORK = 0.12
"""Seconds each step works, so the timeline's bars are not slivers."""


class Review(pydantic.BaseModel):
    decision: Literal["approved", "rejected"]
    notes: str | None = None


review = define_hook(Review, name="dashboard-review")

_reservations: dict[str, int] = {}
"""Attempts at reserving stock, per order: the first one of each order fails."""


@step
async def fetch_order(order_id: str) -> dict[str, object]:
    await asyncio.sleep(WORK)
    return {"order": order_id, "items": ["kettle", "teapot"], "total_cents": 4_990}


@step(max_retries=3)
async def reserve_stock(order_id: str) -> str:
    _reservations[order_id] = _reservations.get(order_id, 0) + 1
    await asyncio.sleep(WORK)
    if _reservations[order_id] == 1:
        raise RetryableError("the warehouse is busy", retry_after=0.25)
    return f"reservation-{order_id}"


@step
async def check_fraud(order: dict[str, object]) -> dict[str, object]:
    await asyncio.sleep(WORK * 2)
    return {"score": 0.07, "order": order["order"]}


@step
async def quote_shipping(order: dict[str, object]) -> int:
    await asyncio.sleep(WORK * 1.5)
    return 495


@step
async def send_confirmation(order_id: str, decision: str) -> str:
    await asyncio.sleep(WORK)
    return f"{order_id}: {decision}"


@workflow(name="review-order")
async def review_order(order_id: str) -> dict[str, object]:
    order = await fetch_order(order_id)
    reservation = await reserve_stock(order_id)
    fraud, shipping = await asyncio.gather(check_fraud(order), quote_shipping(order))
    await sleep(0.3)
    decision = await review.create(token=f"review-{order_id}")
    message = await send_confirmation(order_id, decision.decision)
    return {
        "reservation": reservation,
        "fraud": fraud,
        "shipping_cents": shipping,
        "decision": decision.decision,
        "notes": decision.notes,
        "message": message,
    }


@step
async def charge_card(order_id: str) -> str:
    raise FatalError(f"card declined for {order_id}")


@workflow(name="charge-order")
async def charge_order(order_id: str) -> str:
    return await charge_card(order_id)
