"""Version 2, done right: the same change behind ``perdure.patched``.

Runs that version 1 started, and that passed this point without the patch, keep taking
the old branch; new runs take the new one. Once no run of version 1 is in flight, drop
the old branch and replace ``patched`` with ``perdure.deprecate_patch("charge-first")``.
"""

from __future__ import annotations

import perdure
from perdure import define_hook, step, workflow

go = define_hook(dict, name="shop-go")


@step(name="shop.reserve")
async def reserve(order: str) -> str:
    return f"reserved {order}"


@step(name="shop.charge")
async def charge(order: str) -> str:
    return f"charged {order}"


@workflow(name="shop-checkout", version="v2")
async def checkout(order: str) -> list[str]:
    if perdure.patched("charge-first"):
        done = [await charge(order)]
        await go.create(token=f"go-{order}")
        done.append(await reserve(order))
        return done
    done = [await reserve(order)]
    await go.create(token=f"go-{order}")
    done.append(await charge(order))
    return done
