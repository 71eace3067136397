"""A compatible version 2: a step's body changed, and a step added after the last wait.

Runs in flight replay on it: up to where each one is, it makes the same durable calls
in the same order as version 1 did.
"""

from __future__ import annotations

from perdure import define_hook, step, workflow

go = define_hook(dict, name="shop-go")


@step(name="shop.reserve")
async def reserve(order: str) -> str:
    return f"reserved {order} (v2)"  # a step's body may change at any time


@step(name="shop.charge")
async def charge(order: str) -> str:
    return f"charged {order}"


@step(name="shop.receipt")
async def receipt(order: str) -> str:
    return f"receipt for {order}"


@workflow(name="shop-checkout", version="v2-compatible")
async def checkout(order: str) -> list[str]:
    done = [await reserve(order)]
    await go.create(token=f"go-{order}")
    done.append(await charge(order))
    done.append(await receipt(order))  # new, after every call a run in flight has made
    return done
