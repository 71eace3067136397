"""The worker: claims runnable runs, keeps live ones in memory, hands back the rest.

One loop, woken whenever something may have changed (a commit by any process, a local
start, resume or cancel, a timer of an unheld run coming due), does one pass:

1. claim runs whose ``wake_at`` is due, as far as its step slots have room for them
   (`Worker._claim`), and start an actor for each (a fresh start, or a replay of the
   log after a crash, a restart or an eviction);
2. claim the step tasks of the queues it serves, as its step slots allow, and run them
   (`perdure._runtime._queues.QueueRunner`);
3. hand each held run the hook payloads waiting in its inbox, and the outcomes of its
   steps that queues' workers ran;
4. deliver cancel requests;
5. start the runs of the schedules' ticks that came due (`perdure._runtime._ticker`);
6. set a timer for the next unheld run to come due, or the next tick, whichever is first.

Every second (at least three times per lease, on stores with leases) it also records a
heartbeat and reaps dead workers (their runs are released and claimed at once): those
whose lease lapsed, and, without waiting for it, those of its own host whose process is
gone (`perdure._runtime._gone`). The
heartbeat's registration carries the workflows the worker defines, with their versions;
every few rounds the worker also blocks the runs no live worker can take
(`perdure._runtime._orphans`). A run it claims that has killed its worker
``poison_after`` times in a row is blocked, not run.

The lease (`perdure._runtime._lease.Lease`) is checked before the worker claims
anything and before any step attempt begins, its own runs' and its queues' alike: once
it may have lapsed, the worker asks the store first, and lets everything go if it was
taken for dead meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from perdure import _log
from perdure._clock import Clock, FakeClock, TimerHandle
from perdure._errors import LeaseLostError, RowFormatError
from perdure._metrics import BACKLOG_EVERY, recorder, set_backlog, watch_worker
from perdure._records import NewEvent, RunRecord
from perdure._runtime._actor import RunActor
from perdure._runtime._attempts import StepAttempts
from perdure._runtime._blocked import retry_blocked
from perdure._runtime._gone import reap_gone
from perdure._runtime._lease import Lease
from perdure._runtime._orphans import (
    block_stranded,
    check_poison_after,
    defined_workflows,
    poison_reason,
)
from perdure._runtime._outage import Outage, until_the_store_answers
from perdure._runtime._queues import QueueRunner
from perdure._runtime._step_limits import StepGate
from perdure._runtime._ticker import Ticker
from perdure._stats import StatsWindow
from perdure._workflow import lookup_workflow, registered_workflows
from perdure.stores import FAR_FUTURE

if TYPE_CHECKING:
    from collections.abc import Callable

    from perdure._runtime._hosts import HeldRun
    from perdure.stores import Store

__all__ = ["Worker", "WorkerStatistics"]

logger = logging.getLogger("perdure.worker")

_CLAIM_BATCH = 100
_QUEUED = 4
"""A worker claims runs for its step slots and a quarter more (at least one): `_claim`."""
_MAINTENANCE_SECONDS = 1.0
_STRANDED_EVERY = 5
"""Maintenance rounds between two looks for runs no live worker can take."""
_AUTOJUMP_SPINS = 8
_WRITES_WAIT = 2.0
"""Seconds `Worker.stop` waits for appends already on their way (a store that hangs
must not hold the stop up)."""
_HAND_BACK_FOR = 5.0
"""Seconds `Worker.stop` keeps trying to hand its runs back while the store does not
answer, on a store without a lease (with one, the lease: past it, other workers take
the runs over anyway). A stop during a database restart then still hands them back."""


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """A snapshot of what a worker is doing."""

    worker_id: str
    held_runs: int
    """Runs in memory on this worker."""
    suspended_runs: int
    """Held runs waiting only on timers, hooks or steps that queues' workers run."""
    running_steps: int
    """Steps running here: those of held runs, and step tasks of the queues served."""
    claimed: int
    """Runs claimed since the worker started."""
    replays: int
    """Runs brought back from their log (after a crash, restart or eviction)."""
    evictions: int
    """Suspended runs handed back to the store to free memory."""
    finished: int
    lost_leases: int = 0
    """Times the worker found it had been taken for dead and let its runs go."""
    limit_waits: int = 0
    """Step attempts that found their step's limit across workers full and waited
    (``@step(concurrency=..., rate=...)``); runs waiting on a workflow's limit are
    counted by ``engine.limits()``."""


def new_worker_id() -> str:
    """A worker id that says where the worker runs: host, pid and a random suffix."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}"


class Worker:
    """Runs workflows from a store. Owned and started by an `Engine`.

    It is the host of its run actors (`RunHost`) and of its queue runner (`QueueHost`):
    they reach the worker only through those protocols.
    """

    _fresh: list[HeldRun]
    """Held runs begun since the last pass read the inbox (see `ready`)."""
    _eager: set[str]
    """Runs started eagerly here that have not begun: their inbox is empty (`ready`)."""
    _out_of_room = False
    """The last claim had no room (slots or memory): a run that ends here pokes."""

    def __init__(
        self,
        store: Store,
        clock: Clock,
        *,
        worker_id: str | None = None,
        max_concurrent_steps: int = 100,
        max_active_runs: int = 10_000,
        evict_after: timedelta = timedelta(seconds=60),
        on_run_finished: Callable[[str, NewEvent | None], None] | None = None,
        on_progress: Callable[[], None] | None = None,
        queues: frozenset[str] = frozenset(),
        poison_after: int = 5,
        orphan_after: timedelta = timedelta(seconds=30),
    ) -> None:
        if max_concurrent_steps < 1 or max_active_runs < 1:
            raise ValueError("max_concurrent_steps and max_active_runs must be >= 1")
        # poison_after: recoveries in a row (its worker found dead each time) after which
        # a run this worker claims is blocked as a poison run instead of run again;
        # orphan_after: how long a run no live worker can take waits before it is blocked.
        self.poison_after, self.orphan_after = (
            check_poison_after(poison_after),
            orphan_after,
        )
        self.id = worker_id or new_worker_id()
        self.store = store
        self.clock = clock
        self.evict_after = evict_after
        self.lease = Lease(store, self.id, clock, self._lost_lease, describe=defined_workflows)
        """The worker's lease, checked before it claims or begins anything."""
        self._lease = self.lease.seconds
        """The store's lease in seconds (0 for stores that tell dead workers otherwise)."""
        self._heartbeat_every = (
            min(_MAINTENANCE_SECONDS, self._lease / 3) if self._lease else _MAINTENANCE_SECONDS
        )
        self.attempts = StepAttempts(
            clock,
            max_concurrent_steps,
            self.lease,
            self._slot_freed,
            StepGate(store, self.id, clock),
        )
        """Runs step attempts, of held runs and queues alike, in ``max_concurrent_steps`` slots."""
        self.queues = queues
        """The queues whose step tasks this worker claims and runs."""
        self._queue_runner = QueueRunner(self, queues, max_concurrent_steps)
        self._ticker = Ticker(store, clock)
        """Starts the runs of the schedules' due ticks (`perdure._runtime._ticker`)."""
        self._max_active_runs = max_active_runs
        self._slots = max_concurrent_steps
        self._wanted_at_most = max_concurrent_steps + max(1, max_concurrent_steps // _QUEUED)
        """How many step attempts and beginning runs the worker claims runs up to."""
        self._beginning = 0
        """Runs claimed whose actors have not begun yet: each wants a slot very soon."""
        self._short_of_slots = False
        """The last pass claimed nothing for want of a free slot: one freeing up pokes."""
        self._on_run_finished = on_run_finished
        self._on_progress = on_progress
        self._actors: dict[str, RunActor] = {}
        self._remote_waiters: set[str] = set()
        """Held runs that awaited a queue's step at some point (see `_pass`)."""
        self._fresh, self._eager = [], set()
        self._poked = asyncio.Event()
        self._passing = False
        self._stopping = False
        self._main: asyncio.Task[None] | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._autojump: asyncio.Task[None] | None = None
        self._idle = asyncio.Event()
        self._drained = asyncio.Event()
        self._idle_check_pending = False
        self.draining = False
        """Set once the worker is stopping: workflows start no new steps."""
        self._wake_timer: TimerHandle | None = None
        self._wake_at: datetime | None = None
        self._background: set[asyncio.Task[object]] = set()
        self._replays = self._claimed = self._evictions = self._finished = 0

    # -- life cycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Register, take over the runs of dead workers, and begin claiming."""
        await self.lease.register()
        released = await self.store.reap_dead_workers(self.id, self.clock.now())
        released += await reap_gone(self.store, self.id, self.clock.now())
        if released:
            logger.info("recovered %d runs and step tasks left by workers that died", released)
        await self._ticker.declare(registered_workflows())
        watch_worker(self)
        loop = asyncio.get_running_loop()
        self._main = loop.create_task(self._loop(), name=f"perdure worker {self.id}")
        self._maintenance = loop.create_task(self._maintain(), name="perdure maintenance")
        if isinstance(self.clock, FakeClock) and self.clock.autojump:
            self._autojump = loop.create_task(self._jump(self.clock), name="perdure autojump")
        self.poke()

    async def stop(self, grace: float = 0.0) -> None:
        """Stop claiming, let running steps finish, and hand every held run back.

        For up to ``grace`` seconds, steps already running may finish and their results
        are logged (the workflows move on, but start no new steps); then every run is
        released at once, so another worker continues it without waiting out a lease.
        A step still running after the grace period is abandoned and runs again
        elsewhere.
        """
        self._stopping = True
        self.draining = True
        if grace > 0 and (self._actors or self._queue_runner.running):
            self._drained.clear()
            self.maybe_idle()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(grace):
                    await self._drained.wait()
        for task in (self._main, self._maintenance, self._autojump):
            if task is not None:
                task.cancel()
        self.lease.close()
        for task in (self._main, self._maintenance, self._autojump):
            if task is not None:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._wake_timer is not None:
            self._wake_timer.cancel()
        # Appends already on their way finish first: a run whose end is being committed
        # then ends here rather than being handed back while it ends.
        writing = [task for actor in self._actors.values() if (task := actor.writing) is not None]
        if writing:
            await asyncio.wait(writing, timeout=_WRITES_WAIT)
        actors = list(self._actors.values())
        for actor in actors:
            actor.drop()
        for pending in list(self._background):
            pending.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self._queue_runner.stop()  # unregistering puts its tasks back in their queues
        await self._unregister()

    async def _unregister(self) -> None:
        """Hand every run back, again while the store does not answer, for a while.

        A stop during a database restart then still hands the runs back. If the store
        stays silent, the worker stops anyway, saying so, and the runs wait out its
        lease as after a crash: the stop does not fail with a connection error (a
        SIGTERM during a restart made ``perdure worker`` exit 1 with a traceback).
        """
        lease = self.store.lease
        patience = lease.total_seconds() if lease is not None else _HAND_BACK_FOR
        try:
            async with asyncio.timeout(patience):
                await until_the_store_answers(
                    lambda: self.store.unregister_worker(self.id, self.clock.now()),
                    f"worker {self.id} could not hand back its runs as it stops",
                )
        except TimeoutError:
            logger.warning(
                "worker %s stops without handing back its runs: the store did not answer "
                "for %.0fs; other workers take them over once its lease lapses",
                self.id,
                patience,
            )

    def poke(self) -> None:
        """Something may have changed: run a pass soon."""
        self._poked.set()
        self._idle.clear()

    def ready(self, run: HeldRun) -> None:
        """``run`` has begun: the next pass hands it its inbox (then `HeldRun.inbox_read`).

        No run is evicted before a pass has handed it what its inbox held: with
        ``evict_after=0``, a run replayed to take a hook's payload was evicted again
        before it saw it, claimed again, and so on for ever.

        A run started eagerly here needs no pass: it was created held, so its inbox
        is empty, and what may reach it since (a cancel, a payload for a hook it made)
        comes with news of its own that makes a pass. A pass per start cost a claim
        query and three reads on the way of every one-step run.
        """
        if self._eager and run.run_id in self._eager:
            self._eager.discard(run.run_id)
            run.inbox_read()
            return
        self._fresh.append(run)
        self.poke()

    # -- the pass -------------------------------------------------------------------

    async def _loop(self) -> None:
        # The database may be down or restarting: retry with a growing pause (at most a
        # few seconds), and say so once per outage, not per retry.
        outage = Outage("worker pass failed", level=logging.ERROR)
        while not self._stopping:
            await self._poked.wait()
            self._poked.clear()
            self._passing = True
            try:
                await self._pass()
            except Exception:
                await asyncio.sleep(outage.failed())
                self._poked.set()
            else:
                outage.ended()
            finally:
                self._passing = False
                self.maybe_idle()

    async def _pass(self) -> None:
        store = self.store
        if not self._stopping:  # a stopping worker only finishes what it holds
            await self._claim()
        fresh, self._fresh = self._fresh, []
        if self._actors:
            await self._deliver()
        for run in fresh:
            run.inbox_read()
        if self._queue_runner.running:  # a step task whose run was cancelled meanwhile
            await self._queue_runner.drop_cancelled(soon=True)
        workflows = registered_workflows()
        next_tick = None
        if not self._stopping:
            fired, next_tick = await self._ticker.fire(workflows)
            if fired:  # a new run to claim, or a cancel to deliver: one more pass
                self._poked.set()
        wake_at = await store.next_wake_at(workflows=workflows)
        self._schedule_wake(min(filter(None, (wake_at, next_tick)), default=None))

    async def _deliver(self) -> None:
        """Hand held runs their inbox (hook payloads, children's ends), queue results, cancels."""
        store = self.store
        for item in await store.inbox(self.id):
            actor = self._actors.get(item.run_id)
            if actor is not None:
                actor.receive(item)
        # Only the runs that awaited a queue's step are looked at, not every held
        # run: a pass must not cost more with each sleeping run held.
        waiting = (self._actors.get(run_id) for run_id in self._remote_waiters)
        if any(actor is not None and actor.awaiting_remote for actor in waiting):
            for task in await store.step_results(self.id):
                actor = self._actors.get(task.run_id)
                if actor is not None:
                    actor.receive_result(task)
        for run_id in await store.cancel_requests(self.id):
            actor = self._actors.get(run_id)
            if actor is not None:
                actor.cancel()

    async def _claim(self) -> None:
        """Claim due runs, and step tasks of the queues served, as room allows.

        A worker claims runs only as far as its step slots have room for them, so that a
        burst spreads over the workers that have room rather than queueing on the first
        to see it. It counts what wants a slot: the step attempts in a slot or waiting
        for one, and the runs it claimed that have not begun (each will want one at
        once). It claims up to its slots and a quarter more; runs it has no room for
        stay in the store, for any worker with room. Before, a worker claimed up to
        ``max_active_runs`` (10,000): three workers of 10 slots, a burst of 300 runs of
        12 steps of 20 ms, and the first worker to see it ran all 3,600 steps while the
        other two idled (BENCHMARKS.md, "Scale-out").

        - Runs that sleep or wait on a hook or a queue want no slot: a worker holds as
          many of those as ``max_active_runs`` allows.
        - The quarter more: a run wants no slot while its last step's result is being
          written, and without runs waiting, its slot idled meanwhile (a worker of 10
          slots ran 20 ms steps at 412 steps/s of the 500 its slots allow; 466 with
          the quarter, as many as when it claimed the whole burst).
        - Why not count every run doing something, writing included, as wanting a
          slot? Capped at its slots so, a worker alone ran bench c's 1,000 runs of
          trivial steps 35 % slower on PostgreSQL: fewer runs shared each commit.
        - While it is short of slots, the worker makes no pass for the runs due: the
          next slot that frees up (`StepSlots.watch`), or run that begins, pokes it.
        """
        if not self.lease.valid:  # nothing is taken on a lease that may have lapsed
            await self.lease.confirm()
        limit = self._claim_limit()
        if limit > 0:
            claimed = await self.store.claim_runs(
                self.id, self.clock.now(), limit, workflows=registered_workflows()
            )
            for record in claimed:
                self._adopt(record)
            if len(claimed) == limit:
                self._poked.set()
        if self.queues and await self._queue_runner.claim():
            self._poked.set()

    def _claim_limit(self) -> int:
        """How many runs to claim now: as many as the step slots have room for, and memory."""
        room = self._max_active_runs - len(self._actors)
        free = self._wanted_at_most - self.attempts.slots.wanted - self._beginning
        self._short_of_slots = free <= 0
        self._out_of_room = room <= 0 or free <= 0
        # Watched on every attempt's way out of its slot: set only while short.
        self.attempts.slots.watch = self._slots - 1 if self._short_of_slots else -1
        return max(0, min(room, free, _CLAIM_BATCH))

    def _slot_freed(self) -> None:
        """A slot freed up, or a run began: claim again if this worker was short of slots."""
        if not self._short_of_slots:
            return
        if self._beginning + self.attempts.slots.wanted < self._slots:
            self._short_of_slots = False
            self.poke()
        else:  # runs still beginning take the slot: watch for the next one
            self.attempts.slots.watch = self._slots - 1

    def reserve_eager(self, workflow: str) -> bool:
        """Whether a run of ``workflow`` started in this process now may begin here at once.

        The eager start: the run is created already held by this worker (the store's
        ``create_run(..., claim_for=...)``), and begins with no pass and no claim. It
        respects what a claim respects: the worker is not stopping, its lease holds, it
        defines the workflow, and its step slots and memory have room (`_claim_limit`).
        True reserves that room, as a claimed run that has not begun holds it: the
        caller then calls `adopt_eager` with what the store answered, whatever it was.
        """
        if (
            self._stopping
            or self.draining
            or not self.lease.valid
            or lookup_workflow(workflow) is None
            or self._max_active_runs - len(self._actors) <= 0
            or self._wanted_at_most - self.attempts.slots.wanted - self._beginning <= 0
        ):
            return False
        self._beginning += 1
        return True

    def adopt_eager(self, record: RunRecord | None) -> None:
        """Begin a run `reserve_eager` made room for, if the store let this worker hold it.

        ``record`` is the store's answer (None when the create failed): a run that
        existed already, or one not held by this worker, gives the room back.
        """
        if record is None or record.owner != self.id or record.id in self._actors:
            self._beginning -= 1
            self._slot_freed()
            return
        if self._stopping:  # stopped while the run was created: the store keeps it
            self._beginning -= 1
            self._spawn(self._hand_back(record.id, self.clock.now()))
            return
        self._eager.add(record.id)
        self._adopt(record, reserved=True)
        if record.id not in self._actors:  # set aside rather than begun
            self._eager.discard(record.id)

    def _adopt(self, record: RunRecord, *, reserved: bool = False) -> None:
        self._claimed += 1
        if reserved:  # `_beginning` counts it already, until it begins or is set aside
            self._beginning -= 1
        if record.malformed is not None:
            problem = RowFormatError("runs", record.id, record.malformed)
            self._spawn(self._set_aside(record, str(problem)))
            return
        if record.recoveries >= self.poison_after:
            self._spawn(self._set_aside(record, poison_reason(record.recoveries)))
            return
        spec = lookup_workflow(record.workflow)
        if spec is None:
            logger.warning(
                "run %s is of workflow %r, which this process does not define; handing it back",
                record.id,
                record.workflow,
            )
            self._spawn(self._hand_back(record.id, self.clock.now() + timedelta(seconds=5)))
            return
        stale = self._actors.get(record.id)
        if stale is not None:
            # The store released the run from this worker (reaped as dead, then claimed
            # back before its heartbeat heard of it): the copy still in memory lost the
            # run meanwhile, and its writes, fenced by this worker's id, would still be
            # accepted beside those of the copy this claim starts.
            logger.warning("run %s was released from this worker and claimed back", record.id)
            stale.drop()
        actor = RunActor(self, record, spec)
        self._actors[record.id] = actor
        self._beginning += 1  # now, not in the task: the next pass may come first
        self._spawn(self._begin(actor))

    async def _begin(self, actor: RunActor) -> None:
        try:
            await actor.begin()
            # One loop turn: the steps the run began with ask for their slots first, so
            # that no pass in between sees the run wanting none.
            await asyncio.sleep(0)
        finally:
            self._beginning -= 1
            self._slot_freed()

    async def _set_aside(self, record: RunRecord, reason: str) -> None:
        """Block a claimed run that must not be run; said once.

        Its row cannot be read, or it is a poison run (its recovery killed its worker
        ``poison_after`` times in a row).

        Handed back, it would be claimed again at once; and before, the claim that met
        it failed for every run (issue 11). Blocked, not failed: the row may be mended
        by hand, then ``perdure unblock`` tries the run again. This worker holds it since
        the claim, so the write is fenced as any, and it reads nothing of the row. A
        cancel request wins, as everywhere (a run blocked with one is due at once, so
        its next holder ends it cancelled here).
        """
        spec = lookup_workflow(record.workflow)
        version = spec.version if spec is not None else None
        blocked = _log.run_blocked(reason=reason, version=version, worker=self.id)

        async def set_aside() -> None:
            now, store = self.clock.now(), self.store
            if record.cancel_requested:
                await store.append(self.id, record.id, [_log.run_cancelled()], now, durable=True)
            else:
                await store.block_run(self.id, record.id, blocked, now)

        try:
            await until_the_store_answers(set_aside, f"could not set run {record.id} aside")
        except LeaseLostError:  # taken over, or ended, meanwhile
            return
        if record.cancel_requested:
            self.run_finished(record.id, _log.run_cancelled())
            return
        logger.warning(
            "run %s is blocked, not failed (perdure unblock %s tries it again): %s",
            record.id,
            record.id,
            reason,
        )

    def _schedule_wake(self, when: datetime | None) -> None:
        # FAR_FUTURE means "woken by a resume or a cancel", which pokes us anyway; a
        # timer for it would make a fake clock jump there and replay the run for nothing.
        if when is None or when >= FAR_FUTURE or when == self._wake_at:
            return
        if self._short_of_slots and when <= self.clock.now():
            # Due runs this worker has no slot for: the next slot that frees up pokes it,
            # and meanwhile other workers may take them. A timer now would spin passes.
            return
        if self._wake_timer is not None:
            self._wake_timer.cancel()
        self._wake_at = when
        self._wake_timer = self.clock.call_at(when, self._timer_wake)

    def _timer_wake(self) -> None:
        self._wake_at = None
        self._wake_timer = None
        self.poke()

    def _spawn(self, coro: asyncio.Future[object] | object) -> None:
        task: asyncio.Task[object] = asyncio.ensure_future(coro)  # type: ignore[arg-type]
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _lost_lease(self) -> None:
        """The store took this worker for dead: every run it held was released then.

        Other workers may hold them now. Drop them all, and the step tasks too (they
        were put back in their queues), then hand back whatever the store still shows
        as this worker's: a claim that met the reap half-way. The lease then registers
        the worker afresh.
        """
        for actor in list(self._actors.values()):
            # As when a write of the run's is refused: the same news, learnt sooner.
            logger.warning("run %s was taken over by another worker", actor.run_id)
            actor.drop()
        await self._queue_runner.stop()
        await until_the_store_answers(
            lambda: self.store.unregister_worker(self.id, self.clock.now()),
            f"worker {self.id} could not hand back what it held",
        )
        self.poke()

    async def _hand_back(self, run_id: str, wake_at: datetime) -> None:
        # Retried until the store answers: a run given up but not released would stay
        # held by this live worker, and no other worker would ever take it.
        with contextlib.suppress(LeaseLostError):  # held by another worker now, or ended
            await until_the_store_answers(
                lambda: self.store.release_run(self.id, run_id, wake_at),
                f"could not hand back run {run_id}",
            )
        # Released now: a pass that ran while the release was in flight may have missed
        # the run's wake time, so look again.
        self.poke()

    # -- called by actors (RunHost) -------------------------------------------------

    def hand_back(self, actor: HeldRun) -> None:
        """Hand back a run whose actor gave up (the store failed); it is due at once."""
        actor.drop()
        self._spawn(self._hand_back(actor.run_id, self.clock.now()))

    def evict(self, actor: HeldRun, wake_at: datetime) -> None:
        """Hand a suspended run back to the store; it is replayed when it wakes."""
        self._evictions += 1
        actor.drop()
        self._spawn(self._hand_back(actor.run_id, wake_at))
        self.poke()

    def awaits_remote(self, actor: HeldRun) -> None:
        """Note that ``actor`` awaits a step that a queue's workers run."""
        self._remote_waiters.add(actor.run_id)

    def forget(self, actor: HeldRun) -> None:
        """Stop tracking an actor that is gone.

        The owner hears of it (``on_run_finished`` with no terminal event): a
        `Run.result` that waited for the end here, with no store read, reads the store
        again (the run was evicted, handed back or lost, or it ends just after this).
        """
        if self._actors.get(actor.run_id) is actor:
            del self._actors[actor.run_id]
            self._remote_waiters.discard(actor.run_id)
            if self._on_run_finished is not None:
                self._on_run_finished(actor.run_id, None)
        self.maybe_idle()

    def holds(self, run_id: str) -> bool:
        """Whether a run is in memory here: its end, if it ends, is committed here."""
        return run_id in self._actors

    def progressed(self) -> None:
        """A held run's log grew (waiters in this process may want to look)."""
        if self._on_progress is not None:
            self._on_progress()

    def replayed(self) -> None:
        """A held run was brought back from its log."""
        self._replays += 1

    def run_finished(self, run_id: str, terminal: NewEvent) -> None:
        """A held run ended here: ``terminal``, its last event, is committed.

        A pass follows only if the last claim had no room: otherwise it took every due
        run there was, and runs due since came with news that made a pass. A pass after
        every end cost a claim query and three reads per one-step run (workload b). The
        end of a run that frees a place of its workflow's concurrency limit, or tells a
        parent held here, pokes from the actor (`RunActor._finish`).
        """
        self._finished += 1
        if self._on_run_finished is not None:
            self._on_run_finished(run_id, terminal)
        if self._out_of_room:
            self.poke()

    # -- idleness, for the fake clock -----------------------------------------------

    @property
    def busy(self) -> bool:
        """Whether anything is happening that does not wait on the clock."""
        return (
            self._poked.is_set()
            or self._passing
            or any(actor.busy for actor in self._actors.values())
            or any(not t.done() for t in self._background)
            or self._queue_runner.busy
        )

    def maybe_idle(self) -> None:
        """Note that the worker may have nothing left to do but wait.

        The check looks at every held run, and runs settle by the thousand at start
        and shutdown: it is done once per loop turn, however often it is asked for.
        """
        if self._autojump is None and not self.draining:
            return  # nobody waits for idleness: no fake clock to move, no drain to finish
        if not self._idle_check_pending:
            self._idle_check_pending = True
            asyncio.get_running_loop().call_soon(self._check_idle)

    def _check_idle(self) -> None:
        self._idle_check_pending = False
        if (
            self.draining
            and all(actor.drained for actor in self._actors.values())
            and self._queue_runner.drained
        ):
            self._drained.set()
        if not self.busy:
            self._idle.set()

    async def _jump(self, clock: FakeClock) -> None:
        # Jump only when the worker stays idle for several loop iterations: a step
        # that just finished may still be handing its result over.
        while True:
            await self._idle.wait()
            for _ in range(_AUTOJUMP_SPINS):
                await asyncio.sleep(0)
                if self.busy:
                    break
            else:
                if not clock.jump():
                    self._idle.clear()
                continue
            self._idle.clear()

    # -- maintenance ----------------------------------------------------------------

    async def _maintain(self) -> None:
        loop = asyncio.get_running_loop()
        reap_from = 0.0  # the loop time before which this worker reaps nobody
        rounds = 0
        backlog_at = 0.0  # the loop time after which the backlog gauges are read again
        # Not paced by the outage: the heartbeat comes round often enough anyway.
        outage = Outage("worker maintenance failed", level=logging.ERROR)
        while True:
            await asyncio.sleep(self._heartbeat_every)
            try:
                if not await self.lease.renew():
                    self.poke()  # it let everything go: claim afresh
                now = self.clock.now()
                # Not held back by an outage: the kernel, not a heartbeat, says these died.
                if await reap_gone(self.store, self.id, now):
                    self.poke()
                if loop.time() >= reap_from and await self.store.reap_dead_workers(self.id, now):
                    self.poke()
                if not self._stopping and await retry_blocked(self.store, self.id, now):
                    self.poke()  # blocked runs this code may mend are due
                if self._queue_runner.running:  # a cancel its passes missed, at the latest
                    await self._queue_runner.drop_cancelled()
                if self.lease.described != defined_workflows():
                    await self.lease.register()  # workflows defined since: say so
                rounds += 1
                if not self._stopping and rounds % _STRANDED_EVERY == 0:
                    await block_stranded(self.store, self.id, now, self.orphan_after)
                if loop.time() >= backlog_at and recorder() is not None:
                    backlog_at = loop.time() + BACKLOG_EVERY
                    await self._read_backlog(now)
            except Exception:
                outage.failed()
                # Cut off from the store, this worker cannot tell who else was: the others
                # get a whole lease to heartbeat again before it reaps anyone.
                reap_from = loop.time() + self._lease
            else:
                outage.ended()

    async def _read_backlog(self, now: datetime) -> None:
        """The pending and blocked runs per workflow, for the gauges (`perdure._metrics`).

        Read from the store, so every worker reports the same figures: a dashboard takes
        the maximum, not the sum. Only while metrics are recorded, every `BACKLOG_EVERY`.
        """
        stats = await self.store.stats(StatsWindow(now, now, timedelta(minutes=1)))
        set_backlog((each.workflow, each.pending, each.blocked) for each in stats.backlog)

    def gauges(self) -> tuple[int, int, int]:
        """Held runs; of those suspended, those with a timer, and those waiting on hooks.

        Read by the metrics' gauges, perhaps on a Prometheus server's thread: hence a
        copy of the actors first.
        """
        held = sleeping = waiting = 0
        for actor in list(self._actors.values()):
            held += 1
            if actor.suspended:
                if actor.sleeping:
                    sleeping += 1
                else:
                    waiting += 1
        return held, sleeping, waiting

    def statistics(self) -> WorkerStatistics:
        """A snapshot of the worker's counters."""
        actors = list(self._actors.values())
        return WorkerStatistics(
            worker_id=self.id,
            held_runs=len(actors),
            suspended_runs=sum(1 for a in actors if a.suspended),
            running_steps=sum(a.running_steps for a in actors) + self._queue_runner.running,
            claimed=self._claimed,
            replays=self._replays,
            evictions=self._evictions,
            finished=self._finished,
            lost_leases=self.lease.lost,
            limit_waits=self.attempts.gate.waits if self.attempts.gate is not None else 0,
        )
