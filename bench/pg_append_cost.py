"""Where a sequential step's append goes on PostgreSQL: round trip, pool, function, Python.

    .venv/bin/python bench/pg_append_cost.py [--steps 5000] [--server URL]

A trivial sequential step costs perdure one append (``step_started`` and
``step_completed`` together: the run row's lock and fence, the events, the step row,
the run's ``last_seq``) and one commit with ``synchronous_commit=off``. This makes
exactly that append in a loop, on a throwaway database with perdure's schema, peeling
the layers off one at a time:

- the store's ``append``, as the engine calls it (encoding, the group-commit batcher,
  the connection its appends keep, ``perdure_append_plain``, the round trip);
- ``perdure_append`` (what every append used before migration 0016), encoded and sent
  through the pool, as the store did then;
- each function with its arguments encoded beforehand, on a connection held, and the
  server's own time for it (``pg_stat_user_functions``, with ``track_functions=all``
  for this session);
- the floors: an insert of one 100-byte row committed with ``synchronous_commit=off``,
  and a ``SELECT 1`` round trip, on a connection held and through the pool.

Each line is µs per call as wall time and as this process's CPU time (the client's
share; the rest of the wall time is the server and the wait for it).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import secrets
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import asyncpg

from perdure._records import EventType, NewEvent, NewRun
from perdure.stores.postgres import PostgresStore
from perdure.stores.postgres import _ops as ops

SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
RUN = "run-" + "0" * 32


async def timed(label: str, steps: int, body: Callable[[int], Awaitable[object]]) -> float:
    """Await ``body`` ``steps`` times; print and return µs per call (wall), and CPU."""
    for index in range(steps, steps + 200):  # warm: statements prepared, pages cached
        await body(index)
    wall, cpu = time.perf_counter(), time.process_time()
    for index in range(steps):
        await body(index)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"{label:<64} {wall / steps * 1e6:>8.1f} {cpu / steps * 1e6:>8.1f}")
    return wall / steps * 1e6


def step_events(index: int) -> list[NewEvent]:
    """The two events of a trivial step, as the engine logs them."""
    cid = f"bench-noop#{index + 1}"
    return [
        NewEvent(EventType.STEP_STARTED, cid, {"name": "bench-noop", "attempt": 1, "input": [1]}),
        NewEvent(EventType.STEP_COMPLETED, cid, {"name": "bench-noop", "attempt": 1, "output": 1}),
    ]


async def measure(url: str, steps: int) -> None:
    """Print the table for the database at ``url``."""
    store = PostgresStore(url)
    await store.open()
    try:
        now = datetime.now(UTC)
        await store.create_run(NewRun(RUN, "bench-sequential", {"n": 1}), now)
        (run,) = await store.claim_runs("w1", now, 1)
        pool = store._db  # noqa: SLF001 - the store's own pool, measured layer by layer
        calls = itertools.count()

        def arguments() -> ops.Append:
            events = step_events(next(calls))
            return ops.append_arguments("w1", run.id, events, now, durable=False,
                                        consume_inbox=None)  # fmt: skip

        async def store_append(_: int) -> None:
            await store.append("w1", run.id, step_events(next(calls)), now)

        async def pool_append(_: int) -> None:
            await pool.fetchval(ops.APPEND, *arguments().arguments())

        print(f"{'per call, ' + str(steps) + ' in a row':<64} {'wall µs':>8} {'CPU µs':>8}")
        await timed("store.append of a trivial step (as the engine calls it)", steps, store_append)
        await timed("  perdure_append, encoded and sent through the pool", steps, pool_append)
        async with pool.acquire() as conn:
            await conn.execute("SET track_functions = 'all'")
            for function, query, encode in (
                ("perdure_append_plain", ops.APPEND_PLAIN, ops.Append.plain_arguments),
                ("perdure_append", ops.APPEND, ops.Append.arguments),
            ):
                encoded = [encode(arguments()) for _ in range(steps + 200)]

                async def held(
                    index: int, query: str = query, encoded: list[Any] = encoded
                ) -> None:
                    await conn.fetchval(query, *encoded[index])

                await conn.execute(
                    "SELECT pg_stat_reset_single_function_counters(oid) FROM pg_proc "
                    "WHERE proname = $1",
                    function,
                )
                await timed(f"  {function}, encoded beforehand, on a connection held", steps, held)
                await conn.execute("SELECT pg_stat_force_next_flush()")
                server = await conn.fetchrow(
                    "SELECT calls, total_time FROM pg_stat_user_functions WHERE funcname = $1",
                    function,
                )
                if server is not None and server["calls"]:
                    per_call = server["total_time"] / server["calls"] * 1000
                    print(f"{'    of which the function, on the server':<64} {per_call:>8.1f}")
            await conn.execute("SET track_functions = 'none'")
            await conn.execute("CREATE TEMP TABLE floor (id bigserial PRIMARY KEY, data text)")

            async def floor(_: int) -> None:
                await conn.execute(
                    "SELECT set_config('synchronous_commit', 'off', true); "
                    "INSERT INTO floor (data) VALUES (repeat('x', 100))"
                )

            async def ping(_: int) -> None:
                await conn.fetchval("SELECT 1")

            async def pool_ping(_: int) -> None:
                await pool.fetchval("SELECT 1")

            await timed("one 100-byte row committed, synchronous_commit off", steps, floor)
            await timed("SELECT 1 on a connection held (a round trip)", steps, ping)
        await timed("SELECT 1 through the pool (a round trip, acquire, release)", steps, pool_ping)
    finally:
        await store.close()


async def main() -> None:
    """Measure on a throwaway database of the server."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--server", default=SERVER)
    args = parser.parse_args()
    name = f"perdure_bench_append_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(args.server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            base = args.server.rsplit("/", 1)[0]
            await measure(f"{base}/{name}", args.steps)
        finally:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
