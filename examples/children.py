"""Child workflows and cancellation, as a program: python examples/children.py.

An order fans out to one payment workflow per item (child runs, in parallel), catches
the failure of one of them, and starts an audit as a detached child. A second order is
cancelled while it runs: its attached child and the step that child runs see the
cancel; its detached child does not. It prints what happened, and the run tree.
"""

import asyncio
import os

import perdure
from perdure import step, workflow

packing: list[str] = []
"""What the long step did: it began, and (when its run was cancelled) it cleaned up."""
began = asyncio.Event()


@step
async def charge(item: str, cents: int) -> str:
    if cents > 10_000:
        raise perdure.FatalError(f"card declined for {item}")
    return f"{item}: charged {cents}"


@workflow
async def pay(item: str, cents: int) -> str:
    return await charge(item, cents)


@step
async def write_audit(order_id: str) -> str:
    return f"audited {order_id}"


@workflow
async def audit(order_id: str) -> str:
    return await write_audit(order_id)


@workflow
async def fulfil(order_id: str, items: dict[str, int]) -> list[str]:
    # A detached child: a Run handle now, its result whenever (or never) awaited.
    await perdure.start_child(audit, order_id, detached=True)
    # Calling a workflow in a workflow starts a child run and awaits its result; gather
    # runs them in parallel. Each child is started once, whatever crashes in between.
    results = await asyncio.gather(
        *(pay(item, cents) for item, cents in items.items()), return_exceptions=True
    )
    receipts = []
    for result in results:
        if isinstance(result, perdure.WorkflowFailed):  # the child's error, caught
            receipts.append(f"failed: {result.message} (child run {result.run_id})")
        elif isinstance(result, BaseException):
            raise result
        else:
            receipts.append(result)
    return receipts


@step
async def pack(order_id: str) -> str:
    packing.append(f"packing {order_id}")
    began.set()
    try:
        await asyncio.sleep(3600)  # a long job: a cancel interrupts it at this await
    except asyncio.CancelledError:
        packing.append(f"packing of {order_id} stopped, cleaned up")
        raise
    return "packed"


@workflow
async def pack_order(order_id: str) -> str:
    return await pack(order_id)


@workflow
async def slow_order(order_id: str) -> str:
    await perdure.start_child(audit, order_id, detached=True)  # outlives the cancel
    return await pack_order(order_id)  # attached: cancelled with this run


async def main() -> None:
    url = os.environ.get("PERDURE_DATABASE_URL", "sqlite:///.perdure/children.db")
    async with perdure.Engine(url) as engine:
        run = await engine.start(fulfil, "order-1", {"book": 1200, "piano": 250_000})
        for receipt in await run.result():
            print(receipt)
        children = await engine.list_runs(parent_id=run.id)
        for line in sorted(f"child {c.workflow}: {c.record.status.value}" for c in children):
            print(line)

        slow = await engine.start(slow_order, "order-2")
        await began.wait()  # until the grandchild's step runs
        await slow.cancel()
        try:
            await slow.result()
        except perdure.WorkflowCancelled:
            print("order-2 cancelled")
        for child in sorted(await engine.list_runs(parent_id=slow.id), key=lambda r: r.workflow):
            try:
                await child.result(timeout=10)
            except perdure.WorkflowCancelled:
                print(f"child {child.workflow}: cancelled")
            else:
                print(f"child {child.workflow}: {(await child.status()).value}")
        print(*packing, sep="\n")


if __name__ == "__main__":
    asyncio.run(main())
