"""What SQLite alone costs for one trivial step: the append perdure makes, in a loop.

    .venv/bin/python bench/append_cost.py [--steps 20000]

A sequential step costs perdure one append (``step_started`` and ``step_completed`` in
one transaction, with the run's fence and index rows) and one commit. This runs exactly
those statements (`perdure.stores.sqlite._ops.append`) on a fresh file with perdure's
schema, one transaction per step as the writer runs them when nothing else is queued,
and reports µs per step as wall time and as the thread's CPU time (steadier on a shared
machine). Next to the per-step overhead of workload a, it tells what part of a step is
SQLite's and what part is the rest of perdure. For comparison it also times a commit
of one 100-byte row (`physical.py`'s floor) and an empty transaction.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from perdure._records import EventType, NewEvent, NewRun
from perdure.stores.sqlite import _ops as ops
from perdure.stores.sqlite._schema import connect, migrate, migrations


def timed(label: str, steps: int, body: Callable[[int], object]) -> None:
    """Run ``body`` ``steps`` times; print µs per call, wall and CPU."""
    wall, cpu = time.perf_counter(), time.thread_time()
    for index in range(steps):
        body(index)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    print(f"{label:<52} {wall / steps * 1e6:>8.1f} {cpu / steps * 1e6:>8.1f}")


def main() -> None:
    """Measure on a fresh database in a temporary folder."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20000)
    args = parser.parse_args()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        conn = connect(Path(folder) / "append.db")
        migrate(conn, migrations())
        conn.execute("CREATE TABLE floor (id INTEGER PRIMARY KEY, data TEXT NOT NULL)")
        conn.execute("BEGIN IMMEDIATE")
        ops.create_run(conn, NewRun("run-" + "0" * 32, "bench-sequential", {"n": 1}), now)
        ops.claim_runs(conn, "w1", now, 1)
        conn.execute("COMMIT")

        def step(index: int) -> None:
            cid = f"bench-noop#{index + 1}"
            events = [
                NewEvent(
                    EventType.STEP_STARTED,
                    cid,
                    {"name": "bench-noop", "attempt": 1, "input": {"i": index}},
                ),
                NewEvent(
                    EventType.STEP_COMPLETED,
                    cid,
                    {"name": "bench-noop", "attempt": 1, "output": index},
                ),
            ]
            conn.execute("BEGIN IMMEDIATE")
            ops.append(conn, "w1", "run-" + "0" * 32, events, now, consume_inbox=None)
            conn.execute("COMMIT")

        def floor(_: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO floor (data) VALUES (?)", ("x" * 100,))
            conn.execute("COMMIT")

        def empty(_: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("COMMIT")

        print(f"{'per step, ' + str(args.steps) + ' in a row':<52} {'wall µs':>8} {'CPU µs':>8}")
        timed("a trivial step's append and commit (perdure's)", args.steps, step)
        timed("one 100-byte row and commit (the storage floor)", args.steps, floor)
        timed("an empty transaction", args.steps, empty)
        conn.close()


if __name__ == "__main__":
    main()
