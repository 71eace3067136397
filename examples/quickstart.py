"""The README's quickstart, as a program: python examples/quickstart.py."""

import asyncio

import perdure
from perdure import sleep, step, workflow


@step
async def charge(order_id: str, cents: int) -> str:
    # A real step would call a payment API, with the step id as its idempotency key.
    key = perdure.get_step_metadata().step_id
    return f"charged {cents} cents for {order_id} (idempotency key {key})"


@step(max_retries=5, timeout="30s")
async def send_receipt(order_id: str) -> None:
    print(f"receipt sent for {order_id}")


@workflow
async def checkout(order_id: str, cents: int) -> str:
    receipt = await charge(order_id, cents)
    await sleep("2s")  # could be "7 days": a sleeping run holds no resources
    await send_receipt(order_id)
    return receipt


async def main() -> None:
    async with perdure.Engine() as engine:  # sqlite:///.perdure/perdure.db by default
        run = await engine.start(checkout, "order-42", 1999, run_id="checkout-order-42")
        print(await run.result())


if __name__ == "__main__":
    asyncio.run(main())
