"""An incompatible version 2: it charges before it reserves.

A run that version 1 left waiting for its go-ahead has reserved already; on this code
its replay would call charge where its log holds reserve. ``perdure check-replay``
says so before the deploy.
"""

from __future__ import annotations

from perdure import define_hook, step, workflow

go = define_hook(dict, name="shop-go")


@step(name="shop.reserve")
async def reserve(order: str) -> str:
    return f"reserved {order}"


@step(name="shop.charge")
async def charge(order: str) -> str:
    return f"charged {order}"


@workflow(name="shop-checkout", version="v2-unpatched")
async def checkout(order: str) -> list[str]:
    done = [await charge(order)]
    await go.create(token=f"go-{order}")
    done.append(await reserve(order))
    return done
