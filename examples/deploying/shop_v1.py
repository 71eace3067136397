"""Version 1 of the shop: reserve the stock, wait for the go-ahead, then charge."""

from __future__ import annotations

from perdure import define_hook, step, workflow

go = define_hook(dict, name="shop-go")


@step(name="shop.reserve")
async def reserve(order: str) -> str:
    return f"reserved {order}"


@step(name="shop.charge")
async def charge(order: str) -> str:
    return f"charged {order}"


@workflow(name="shop-checkout", version="v1")
async def checkout(order: str) -> list[str]:
    done = [await reserve(order)]
    await go.create(token=f"go-{order}")
    done.append(await charge(order))
    return done
