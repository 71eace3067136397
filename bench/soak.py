"""A long soak with faults: many workers on PostgreSQL, a steady stream of runs, and
workers killed, frozen and stopped, and the server restarted, at random (issue 10 section 5).

    .venv/bin/python bench/soak.py [--minutes 10] [--seed 1] [--workers 3] [--lease 3]
        [--rate 3] [--fault-every 10] [--grace 5] [--drain 180] [--keep]

It starts a PostgreSQL server of its own (``initdb`` in a temporary folder, a free
port: it restarts that server, so never the machine's shared one), ``--workers``
``perdure worker`` processes serving `soak_workflows` (and its queue), and an
``Engine(url, worker=False)`` in this process that starts runs at ``--rate`` per second,
plus a burst of 30 runs of 30 steps every 30 to 60 s, and follows them up: resuming
hooks (through the API, and ``perdure resume-hook`` without ``--module``), cancelling
some (`soak_traffic`). Meanwhile `soak_chaos`
SIGKILLs, SIGSTOPs (past the lease) or SIGTERMs a worker at random intervals (mean
``--fault-every`` seconds), and restarts the server every 30 to 90 s.

After ``--minutes`` it stops starting runs and injecting faults, waits up to
``--drain`` seconds for the runs in flight to end, stops the workers, and checks the
side-effect files and the database against what it did (`soak_check`): nothing lost or
stuck, every accepted start and resume present, nothing recorded twice, each
re-executed step explained by a fault. It prints the figures and every violation, and
exits 1 if there was one. The folder (side effects, worker output, server log) is kept
when there was, or with ``--keep``. RELIABILITY.md records what it found.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import random
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from soak_chaos import Chaos
from soak_check import Database, Verdict, judge, read_effects
from soak_cluster import Server
from soak_traffic import Traffic

from perdure import Engine

PROGRESS_EVERY = 30.0


async def read_database(engine: Engine) -> Database:
    """The runs, their logs, and which of them legitimately wait."""
    store = engine.store
    runs = {r.id: r for r in await store.list_runs(limit=10_000_000)}
    events = {run_id: await store.events(run_id) for run_id in runs}
    live_hooks = {h.run_id for h in await store.list_hooks()}
    now = datetime.now(UTC)
    pending = set()
    for run_id, record in runs.items():
        if not record.status.is_terminal:
            timers = await store.timers(run_id)
            if any(at > now for at in timers.values()):
                pending.add(run_id)
    return Database(runs, events, live_hooks, pending)


async def unfinished(engine: Engine) -> int | None:
    """How many runs have not ended (None while the database is unreachable)."""
    try:
        runs = await engine.store.list_runs(limit=10_000_000)
    except Exception:
        return None
    return sum(not r.status.is_terminal for r in runs)


async def drain(engine: Engine, traffic: Traffic, chaos: Chaos, seconds: float) -> None:
    """Wait until the follow-ups are done and every run has ended (or ``seconds`` pass)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        await chaos.check_workers()
        left = await unfinished(engine)
        if not traffic.follow_ups and left == 0:
            return
        await asyncio.sleep(1.0)
    for task in list(traffic.follow_ups):
        task.cancel()
    print(f"drain: still {len(traffic.follow_ups)} follow-ups and some runs after {seconds:.0f}s")


async def progress(began: float, traffic: Traffic, chaos: Chaos) -> None:
    """A line every `PROGRESS_EVERY` seconds, so a long soak shows it is alive."""
    while True:
        await asyncio.sleep(PROGRESS_EVERY)
        faults = Counter(f.kind for f in chaos.faults)
        print(
            f"+{time.monotonic() - began:5.0f}s: {len(traffic.journal.started)} runs started, "
            f"faults {dict(faults)}, caller errors {sum(traffic.journal.caller_errors.values())}, "
            f"findings {len(chaos.findings)}",
            flush=True,
        )


async def soak(args: argparse.Namespace, folder: Path) -> Verdict:
    """Run the soak in ``folder``; the verdict."""
    (folder / "effects").mkdir(parents=True)
    server = Server(folder / "pg")
    server.init()
    server.start()
    loop = asyncio.get_running_loop()
    main = asyncio.current_task()
    for signum in (signal.SIGTERM, signal.SIGINT):  # a background job ignores SIGINT
        if main is not None:
            loop.add_signal_handler(signum, main.cancel)
    chaos = Chaos(
        server,
        folder,
        random.Random(args.seed * 2 + 1),
        workers=args.workers,
        lease=args.lease,
        grace=args.grace,
        fault_every=args.fault_every,
    )
    try:
        async with Engine(server.url, worker=False) as engine:
            await chaos.start()
            traffic = Traffic(engine, server.url, args.rate, random.Random(args.seed))
            chaos.burst = traffic.burst
            began = time.monotonic()
            until = began + args.minutes * 60
            reporter = asyncio.create_task(progress(began, traffic, chaos))
            await asyncio.gather(
                traffic.run(until), chaos.workers_loop(until), chaos.server_loop(until)
            )
            print(
                f"+{time.monotonic() - began:.0f}s: traffic and faults over; draining", flush=True
            )
            await drain(engine, traffic, chaos, args.drain)
            reporter.cancel()
            await chaos.stop_all()
            db = await read_database(engine)
        effects = read_effects(folder)
        return judge(traffic.journal, effects, db, chaos.faults, chaos.findings, args.lease)
    finally:
        chaos.kill_all()
        with contextlib.suppress(RuntimeError):
            server.stop("immediate")


def report(verdict: Verdict, args: argparse.Namespace) -> None:
    print()
    print(f"soak: {' '.join(sys.argv[1:]) or '(defaults)'}; seed {args.seed}")
    for line in verdict.figures:
        print(line)
    if not verdict.violations:
        print("violations: none")
        return
    kinds = Counter(v.split(":", 1)[0] for v in verdict.violations)
    print(
        f"violations: {len(verdict.violations)} ({', '.join(f'{k} {n}' for k, n in kinds.items())})"
    )
    for line in verdict.violations[:60]:
        print(f"  {line}")
    if len(verdict.violations) > 60:
        print(f"  ... and {len(verdict.violations) - 60} more")


def main() -> None:
    """Parse the arguments, run the soak, print the verdict; exit 1 on a violation."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--lease", type=float, default=3.0, help="the workers' lease (s)")
    parser.add_argument("--rate", type=float, default=3.0, help="runs started per second")
    parser.add_argument("--fault-every", type=float, default=10.0, help="mean s between faults")
    parser.add_argument("--grace", type=float, default=5.0, help="the workers' --grace (s)")
    parser.add_argument("--drain", type=float, default=180.0, help="max s to wait at the end")
    parser.add_argument("--keep", action="store_true", help="keep the folder even if all is well")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="perdure-soak-"))
    folder.chmod(0o755)  # the server, run as the postgres user, must reach its own folder
    print(f"soak folder: {folder}", flush=True)
    try:
        verdict = asyncio.run(soak(args, folder))
    except asyncio.CancelledError:
        print(f"interrupted: workers and server stopped; kept: {folder}")
        sys.exit(2)
    report(verdict, args)
    shutil.rmtree(folder / "pg" / "data", ignore_errors=True)
    if verdict.violations or args.keep:
        print(f"kept: {folder}")
    else:
        shutil.rmtree(folder, ignore_errors=True)
    sys.exit(1 if verdict.violations else 0)


if __name__ == "__main__":
    main()
