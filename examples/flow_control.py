"""Flow control, as a program: python examples/flow_control.py.

Reports for three customers, at most two per customer at once (a concurrency limit
per key); a model call bounded at three at once and ten per second across every worker
(a step's concurrency and rate); an urgent run ahead of the queue (priority); a
webhook delivered twice that starts one run (a dedupe key); and a burst of edits to one
document that starts one run, with the last edit (debounce). It prints what happened.
"""

import asyncio
import os

import perdure
from perdure import Limit, step, workflow

in_flight: dict[str, int] = {}
most_in_flight: dict[str, int] = {}


@step(concurrency=3, rate="10/s")  # across all workers sharing the database
async def call_model(prompt: str) -> str:
    await asyncio.sleep(0.01)
    return f"summary of {prompt}"


@workflow(concurrency=Limit(2, key="customer"))  # two runs per customer at once
async def report(customer: str, month: int) -> str:
    in_flight[customer] = in_flight.get(customer, 0) + 1
    most_in_flight[customer] = max(most_in_flight.get(customer, 0), in_flight[customer])
    try:
        return await call_model(f"{customer} {month}")
    finally:
        in_flight[customer] -= 1


@step
async def handle(event: str) -> str:
    return f"handled {event}"


@workflow
async def on_event(event: str) -> str:
    return await handle(event)


async def main() -> None:
    url = os.environ.get("PERDURE_DATABASE_URL", "sqlite:///.perdure/flow_control.db")
    async with perdure.Engine(url) as engine:
        runs = [
            await engine.start(report, customer, month)
            for customer in ("acme", "globex", "initech")
            for month in range(1, 7)
        ]
        urgent = await engine.start(report, "acme", 12, priority=10)  # ahead of the queue
        await asyncio.gather(*(run.result() for run in [*runs, urgent]))
        for customer, most in sorted(most_in_flight.items()):
            print(f"{customer}: at most {most} reports at once")

        # A webhook delivered twice: while the first run lives, the key returns it.
        first = await engine.start(on_event, "payment-7", dedupe_key="evt-7")
        again = await engine.start(on_event, "payment-7", dedupe_key="evt-7")
        print("one run for a duplicate delivery:", first.id == again.id)
        await first.result()

        # Edits in a burst: one run, a second after the last edit, with the last one.
        for text in ("draft", "draft 2", "final"):
            edit = await engine.start(on_event, text, dedupe_key="doc-1", debounce="1s")
        print("debounced:", await edit.result())


if __name__ == "__main__":
    asyncio.run(main())
