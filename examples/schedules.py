"""Schedules, as a program: python examples/schedules.py.

A schedule declared in code (``@workflow(schedule=...)``, stored when this worker
starts) and one created with ``engine.schedule``: an every-second heartbeat that ends
after three ticks. Then a backfill across the spring DST change in Paris (run twice:
the second starts nothing), a pause, a run started by hand, and a delete. Every
schedule lives in the database, so any number of workers can share it and each tick
still starts one run.
"""

import asyncio
import os
from datetime import UTC, datetime, timedelta

import perdure
from perdure import step, workflow


@step
async def send(report: str) -> str:
    return f"{report} sent"


@workflow(schedule="CRON_TZ=Europe/Paris 0 9 * * MON-FRI")
async def morning_digest(edition: str = "daily") -> str:
    return await send(f"{edition} digest")


@workflow
async def heartbeat(service: str) -> str:
    return f"{service} ok"


async def main() -> None:
    url = os.environ.get("PERDURE_DATABASE_URL", "sqlite:///.perdure/schedules.db")
    async with perdure.Engine(url) as engine:
        digest = await engine.get_schedule("morning_digest")  # stored by this worker
        print(f"{digest.id}: {digest.cron} in {digest.tz}")

        start = perdure.now()
        await engine.schedule(
            "heartbeat",
            heartbeat,
            cron="* * * * * *",  # six fields: every second
            args=("api",),
            overlap="skip",  # a tick while the last run still runs starts nothing
            end_at=start + timedelta(seconds=3),
        )
        while True:  # the worker starts one run per tick, on time
            runs = await engine.list_runs(attributes={"schedule": "heartbeat"})
            ours = [run for run in runs if run.record.created_at >= start]
            if len(ours) == 3 and all(run.record.status.is_terminal for run in ours):
                break
            await asyncio.sleep(0.1)
        results = [await run.result() for run in ours]
        print(f"heartbeat: {len(ours)} runs: {', '.join(results)}")

        # One run per tick in the range; the run ids are those the ticks would have had.
        week = (datetime(2026, 3, 27, tzinfo=UTC), datetime(2026, 3, 31, tzinfo=UTC))
        backfilled = await engine.backfill_schedule("morning_digest", *week)
        print("backfilled:", *(run.id for run in backfilled))  # 09:00 CET, then 09:00 CEST
        again = await engine.backfill_schedule("morning_digest", *week)
        print("backfilled again, same runs:", [r.id for r in again] == [r.id for r in backfilled])

        await engine.pause_schedule("morning_digest")
        manual = await engine.trigger_schedule("morning_digest")  # runs even when paused
        print(f"triggered: {await manual.result()}")
        await engine.delete_schedule("heartbeat")
        print("schedules:", [schedule.id for schedule in await engine.schedules()])


if __name__ == "__main__":
    asyncio.run(main())
