"""Deadlines, attributes and pages, as a program: python examples/deadlines_attributes.py.

Orders label their runs with their customer and tier (perdure.set_attributes), and are
found by them; one order waits for a confirmation that never comes and is cancelled at
its deadline; the runs are then listed a page at a time. It prints what happened.
"""

import asyncio
import os

import perdure
from perdure import step, workflow

confirmation = perdure.define_hook(str, name="order-confirmation")


@step
async def charge(order_id: str, cents: int) -> str:
    return f"{order_id}: charged {cents}"


@workflow(timeout="1h")  # every run of it: cancelled if not ended within an hour
async def checkout(order_id: str, customer: str, cents: int) -> str:
    perdure.set_attributes(customer=customer, tier="gold" if cents > 1000 else "basic")
    receipt = await charge(order_id, cents)
    perdure.set_attributes(charged=True)  # adds a key; setting one again replaces it
    return receipt


@workflow
async def confirm(order_id: str) -> str:
    perdure.set_attributes(order=order_id)
    return await confirmation.create(token=f"confirm-{order_id}")


async def main() -> None:
    url = os.environ.get("PERDURE_DATABASE_URL", "sqlite:///.perdure/deadlines.db")
    async with perdure.Engine(url) as engine:
        for n, (customer, cents) in enumerate([("acme", 500), ("acme", 2500), ("globex", 900)]):
            run = await engine.start(checkout, f"order-{n}", customer, cents)
            print(await run.result())

        # Every run having all of these attributes, newest first.
        found = await engine.list_runs(attributes={"customer": "acme", "charged": True})
        for run in found:
            print(f"acme: {run.record.attributes}")

        # No confirmation comes: at its deadline the run is cancelled, saying why.
        waiting = await engine.start(confirm, "order-9", timeout=0.5)
        try:
            await waiting.result()
        except perdure.WorkflowCancelled as exc:
            print(f"order-9 cancelled: {exc.reason}")

        # Pages of two, newest first; `next` is None on the last page.
        page = await engine.list_runs_page(limit=2, workflow="checkout")
        pages = [[(run.record.attributes or {})["customer"] for run in page.runs]]
        while page.next is not None:
            page = await engine.list_runs_page(limit=2, workflow="checkout", after=page.next)
            pages.append([(run.record.attributes or {})["customer"] for run in page.runs])
        print(f"pages: {pages}")


if __name__ == "__main__":
    asyncio.run(main())
