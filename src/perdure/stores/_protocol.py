"""The storage contract every backend meets: memory, SQLite, PostgreSQL.

A store keeps, per run, an append-only log (`Event`s numbered from 1) and, written in
the same transaction as the events that cause them, the tables that index it:

- runs: status, input, output or error, owner, ``wake_at``, ``cancel_requested``;
- steps: one row per step call (correlation id), its latest attempt and outcome;
- timers: one row per started, uncompleted sleep, with its wake time;
- hooks: one row per live hook token (unique among live hooks);
- hook inbox: payloads `resume_hook` accepted that the run's worker has not yet logged;
- step tasks: one row per step call routed to a queue (``step_started`` with a
  ``queue``) whose outcome the run's worker has not yet logged.

The inbox is not an index over the log, and that is on purpose: only the worker
holding a run appends to its log, in the order it delivers things to the workflow, so
a replay after a crash sees them in the same order. `resume_hook` from any process
therefore stores the payload in the inbox (durably, so the caller may forget it), and
the holding worker moves it into the log as ``hook_received``.

Step tasks follow the same model. The holder logs ``step_started`` with the queue, and
the store queues a task in the same transaction. Workers serving that queue take it
(`claim_step_tasks`), run the step, and store its outcome in the task
(`finish_step_task`), which wakes the run like a resume. The holder reads finished
tasks (`step_results`) and logs a ``step_retrying`` per failed attempt, then
``step_completed`` or ``step_failed``, deleting the task in the same append
(``consume_tasks``). A claimed task whose worker dies or leaves is put back in its
queue, its attempt counted. A step with a queue is always run that way, even when the
holder serves the queue itself, so a replay on any worker treats it the same.

Ownership: a run is *held* by at most one worker (``owner``). Every write that a worker
makes for a run is fenced: it raises `LeaseLostError` and changes nothing unless that
worker still holds the run. A run nobody holds becomes claimable when its ``wake_at`` is
due: pending runs are created with ``wake_at`` = now; a released run gets the time of
its next timer (or `FAR_FUTURE` when it waits only on hooks and step tasks); a
resume, a finished step task or a cancel request on an unheld run sets ``wake_at`` to
now.

Durability: a call whose result a user is told about (`create_run`, `resume_hook`,
`request_cancel`, and `append(..., durable=True)` for a run's final event) is synced to
disk before it returns. Other appends are committed before they return but their sync
may ride on the next one: losing them on power loss only makes a step run again.

Roles: the contract is split by what it keeps, one protocol each (`WorkerStore`,
`RunStore`, `LogStore`, `TimerStore`, `HookStore`, `QueueStore`, `ScheduleStore`,
`StreamStore`), and `Store` is all of them plus a life cycle and change notification. Every backend
implements `Store`; a component that uses only some roles asks for only those, so what
it may touch is plain from its signature.

Times: stores never read a clock. Every write receives ``now`` from the engine, so a
fake clock in tests makes every stored time fake too.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from perdure._chunks import ChunkRow, NewChunk, StreamAttempt
    from perdure._flow import LimitUsage, LimitWait, RunFlow, StepGrant, StepLimits
    from perdure._process import WorkerProcess
    from perdure._records import (
        JSON,
        Event,
        HookRecord,
        InboxItem,
        NewEvent,
        NewRun,
        RunRecord,
        RunStatus,
        StepOutcome,
        StepRecord,
        StepTask,
        WorkerRecord,
    )
    from perdure._schedules import ScheduleRecord
    from perdure._stats import RunStats, StatsWindow

__all__ = [
    "FAR_FUTURE",
    "FlowStore",
    "HookStore",
    "LogStore",
    "QueueStore",
    "RunStore",
    "ScheduleStore",
    "Store",
    "StreamStore",
    "TimerStore",
    "WorkerStore",
]

FAR_FUTURE = datetime(9999, 1, 1, tzinfo=UTC)
"""``wake_at`` of a released run that waits only for hooks: claimable on a resume."""


@runtime_checkable
class WorkerStore(Protocol):
    """Live workers, and what the runs and step tasks of dead ones become.

    How a store tells a dead worker is its own: SQLite holds an OS file lock per worker
    (the kernel drops it on any death), memory has one process; PostgreSQL uses a
    lease, which `lease` gives.
    """

    @property
    def lease(self) -> timedelta | None:
        """How long a worker that stops heartbeating keeps its runs; None without leases.

        A worker heartbeats several times per lease. Stores that tell a dead worker by
        other means (a lock the kernel drops, a single process) have none.
        """

    async def register_worker(
        self, worker_id: str, now: datetime, *, workflows: Mapping[str, str] | None = None
    ) -> None:
        """Announce a live worker, so others can tell later whether it died.

        SQLite holds an OS file lock for the worker for as long as the process lives;
        the kernel drops it on any death, SIGKILL included. ``workflows`` (name -> code
        version) is what the worker defines, kept with its row (`live_workers`): a run
        whose workflow no live worker defines is shown so, and blocked. Registering a
        worker again (an upsert) replaces it; without ``workflows`` it keeps the ones
        recorded before, if any.
        """

    async def live_workers(self, now: datetime) -> list[WorkerRecord]:
        """The workers alive at ``now``, oldest registration first.

        Alive: registered, and heartbeating within the store's lease (PostgreSQL) or
        ``stale_after`` with its lock held (SQLite); every registered worker on the
        memory store. A worker that stopped heartbeating is not listed, even before
        anyone reaps it.
        """

    async def reap_dead_workers(self, worker_id: str, now: datetime) -> int:
        """Release every run held by a worker that is gone; return how many runs and tasks.

        ``worker_id`` is the caller (never reaped). Released runs are due at once, as
        by `unregister_worker`, and replayed by whoever claims them. Each released run
        counts one recovery more (`RunRecord.recoveries`), or 1 if its log grew since
        the last one by more than ``step_started`` events (progress). The step tasks a
        dead worker claimed and did not finish are put back in their queues
        (``queued``, no owner), their ``attempt`` one higher: the attempt that died
        counts.
        """

    async def host_workers(self, host: str) -> list[WorkerProcess]:
        """The registered workers whose recorded host is ``host``, heartbeating or not.

        Each with the pid and process tag it registered with (`perdure._process`), so a
        worker on that host can tell which of them are gone (`reap_gone_workers`).
        """

    async def reap_gone_workers(
        self, worker_id: str, gone: Collection[WorkerProcess], now: datetime
    ) -> int:
        """Reap at once the workers in ``gone``, found dead on their host; how many runs and tasks.

        As `reap_dead_workers` does, lease or no lease: a worker on the dead ones' host
        saw their processes gone (`perdure._process.is_gone`). Fenced: a worker is reaped
        only if its row still records the host, pid and process tag given (what was
        checked is what is reaped), and never ``worker_id`` (the caller). Stores that
        tell a dead worker by themselves also leave alone one they see alive (SQLite:
        its lock held; memory: every worker shares the store's process).
        """

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        """Record that the worker is alive (and, on stores with leases, renew them).

        Returns whether the worker was still registered. False means it was reaped
        meanwhile (taken for dead: its runs were released, its claimed step tasks put
        back): its row is back, but not what it held, and the worker must let all of
        that go (`perdure._runtime._lease`).
        """

    async def unregister_worker(self, worker_id: str, now: datetime) -> None:
        """Forget the worker and release every run it still holds, due at once.

        A released run is due since it was created (``wake_at`` = its ``created_at``),
        and counts no recovery any more (``recoveries`` = 0):
        workers claim runs only as their step slots have room, so due runs may wait,
        and a run that was in flight goes before the runs created after it rather than
        behind every run that was waiting.

        Step tasks it claimed and did not finish are put back in their queues, as by
        `reap_dead_workers`.
        """


@runtime_checkable
class RunStore(Protocol):
    """Runs: created, claimed, released, cancelled, read.

    A run's status, owner and ``wake_at`` live here; the log that moves them is
    `LogStore`'s.
    """

    async def create_run(
        self, run: NewRun, now: datetime, *, claim_for: str | None = None
    ) -> tuple[RunRecord, bool]:
        """Create a pending run with its ``run_created`` event, durably.

        With ``claim_for`` (a worker's id), the new run is held by that worker from its
        creation, in the same transaction (``owner`` = ``claim_for``, ``wake_at`` None,
        as `claim_runs` leaves it): the eager start, where the worker of the process
        that starts the run begins it at once, with no claim. The record returned says
        so (its ``owner``). A run that already existed is returned as it is, never
        claimed.

        A child run (``run.parent_id``) keeps its parent, its root (``root_id``, the
        parent when not given) and its call in the parent (``parent_call``). When a
        child with a ``parent_call`` ends, however it ends (an append, a cancel of a
        pending run), the same transaction puts an item in its parent's inbox (token:
        the child's id; correlation id: ``parent_call``; payload:
        `perdure.stores._common.child_end`) and wakes the parent as `resume_hook` does,
        unless the parent has ended.

        Idempotent on ``run.id``: when a run with that id exists, nothing is written
        and the existing record comes back with ``False``.
        """

    async def fork_run(
        self, run: NewRun, forked_from: str, events: list[NewEvent], now: datetime
    ) -> tuple[RunRecord, bool]:
        """Create a run whose log is its ``run_created`` then ``events``, durably, at once.

        ``run_created`` names ``forked_from`` (the run the events were copied from), and
        so does the record's ``forked_from``; the
        events update the indexes as an `append` would (a ``run_started`` makes it
        running, a sleep sets its timer). Created unheld and due now, in one transaction
        with its log: no worker can claim it before its log is there. Idempotent on
        ``run.id`` as `create_run` is. Raises `HookConflictError` (and writes nothing)
        when an event creates a hook whose token another live hook holds, and ValueError
        when an event would end the run.
        """

    async def claim_runs(
        self,
        worker_id: str,
        now: datetime,
        limit: int,
        *,
        workflows: Collection[str] | None = None,
    ) -> list[RunRecord]:
        """Take up to ``limit`` unheld, unended runs whose ``wake_at`` <= now.

        Oldest ``wake_at`` first; they become held by ``worker_id`` with ``wake_at`` None.
        With ``workflows``, only runs of those workflows are taken: a worker never
        claims a run whose code it does not have.
        """

    async def release_run(self, worker_id: str, run_id: str, wake_at: datetime) -> None:
        """Stop holding a run (evicted or handed back); fenced like `append`.

        The run becomes claimable at ``wake_at``, or at once if it has inbox items,
        finished step tasks or a cancel request.
        Handed back cleanly, it counts no recovery any more (``recoveries`` = 0).
        """

    async def request_cancel(self, run_id: str, now: datetime) -> RunRecord | None:
        """Ask for a run to be cancelled, durably; None when no run has that id.

        An ended run is left as it is. A pending run nobody holds is cancelled here
        and now (``run_cancelled`` appended, status cancelled). Otherwise
        ``cancel_requested`` is set, and an unheld run's ``wake_at`` becomes now.
        """

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's record, or None."""

    async def list_runs(
        self,
        *,
        status: RunStatus | None = None,
        workflow: str | None = None,
        limit: int = 100,
        attributes: Mapping[str, str] | None = None,
        before: tuple[datetime, str] | None = None,
        parent_id: str | None = None,
    ) -> list[RunRecord]:
        """Runs, newest first (by created_at, then id), each with its ``attributes``.

        ``attributes`` (key -> search text, `perdure._attributes.attribute_text`): only
        runs having all of them. ``before`` (a created_at and an id): only runs after
        that one in this order, strictly, so pages cut at the last run of one page are
        stable while new runs are created (they sort first). ``parent_id``: only the
        child runs of that run.
        """

    async def cancel_requests(self, worker_id: str) -> list[str]:
        """Ids of unended runs held by ``worker_id`` that have a cancel request."""

    async def stats(self, window: StatsWindow, *, workflow: str | None = None) -> RunStats:
        """Aggregates of the runs over ``window`` (of ``workflow`` only, when given).

        Runs created, and ended by outcome, per bucket of the window and per workflow;
        the step calls of the most recently ended runs of the window (at most
        `perdure._stats.MAX_SAMPLED_RUNS`), by name; the pending and blocked runs now.
        Built by `perdure._stats.build_stats` from counts each query bounds by the
        window, through an index: the Metrics page stays fast with a million runs.
        """


@runtime_checkable
class LogStore(Protocol):
    """Each run's append-only log, and the step rows it indexes.

    `append` is the one write of a held run: every index (runs, steps, timers, hooks,
    step tasks) moves in its transaction.
    """

    async def append(
        self,
        worker_id: str,
        run_id: str,
        events: list[NewEvent],
        now: datetime,
        *,
        durable: bool = False,
        consume_inbox: list[int] | None = None,
        consume_tasks: list[int] | None = None,
    ) -> int:
        """Append events to a held run's log and update the indexes; return the last seq.

        Fenced: raises `LeaseLostError` (and writes nothing) unless ``worker_id`` holds
        the run. Once the run's cancel is requested, raises `CancelRequestedError` (and
        writes nothing) unless the append ends the run cancelled (its last event is
        ``run_cancelled``): checked in the same transaction as the write, so whatever
        comes after a stored cancel request, a step's result that the workflow would
        act on or the run's completion, is refused, and the worker cancels instead.
        Raises `HookConflictError` (and writes nothing) when a
        ``hook_created`` event without ``error`` names a token another live hook
        holds. ``consume_inbox`` deletes those inbox items, and ``consume_tasks`` those
        step tasks, in the same transaction (their ``hook_received`` and step outcome
        events are among ``events``); ids of other runs are ignored.

        Index updates by event type: ``run_started`` -> status running, started_at;
        ``step_*`` -> the steps row, and a ``step_started`` with a ``queue`` also
        queues a step task (replacing any task of that correlation id);
        ``sleep_started``/``sleep_completed`` -> insert or delete the timer row;
        ``hook_created`` -> insert the hook row (unless ``error``); ``hook_disposed``
        -> delete it; a terminal event (``run_completed``/``run_failed``/
        ``run_cancelled``) -> status, output or error, completed_at, owner and wake_at
        None, and deletes the run's timers, hooks, inbox items and step tasks.

        Other processes are told (`wait_for_change`) of a queued step task, and of a
        terminal event; not of other steps.
        """

    async def block_run(self, worker_id: str, run_id: str, event: NewEvent, now: datetime) -> None:
        """Set a held run aside as blocked: ``event`` is its ``run_blocked``; durably.

        Fenced like `append` (`LeaseLostError`, nothing written, unless ``worker_id``
        holds it). In one transaction: the event is logged, status becomes blocked,
        ``blocked_reason`` the event's reason, and the run is unheld with no
        ``wake_at`` (no claim takes it) -- unless its cancel is requested, when it is
        due at once, so that its next holder cancels it. Nothing else it recorded
        changes: its steps, timers, hooks and inbox stay as they were.
        """

    async def unblock_run(self, run_id: str, now: datetime, *, by: str | None) -> RunRecord | None:
        """Make a blocked run due again, durably; None when no run has that id.

        A blocked run gets ``run_unblocked`` (with ``by``), status running, no
        ``blocked_reason``, no ``recoveries``, and ``wake_at`` = now if nobody holds
        it. Any other run is left as it is and comes back as it stands.
        """

    async def events(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        """The run's log after ``after_seq``, in order."""

    async def steps(self, run_id: str) -> list[StepRecord]:
        """The run's step rows, in the order the steps were first started."""


@runtime_checkable
class TimerStore(Protocol):
    """When things come due: a run's pending sleeps, and the next unheld run to wake."""

    async def timers(self, run_id: str) -> dict[str, datetime]:
        """The run's pending timers: correlation id -> wake time, soonest first.

        Nobody claims by this index (a released run carries its next wake time), but a
        run's detail shows what it sleeps on.
        """

    async def next_wake_at(self, *, workflows: Collection[str] | None = None) -> datetime | None:
        """The earliest ``wake_at`` of any unheld, unended run (of ``workflows``), or None."""


@runtime_checkable
class HookStore(Protocol):
    """Live hooks by token, and the inbox of payloads resumed from any process."""

    async def resume_hook(
        self,
        token: str,
        payload: JSON,
        now: datetime,
        *,
        name: str | None = None,
        created_by: tuple[str, str] | None = None,
    ) -> HookRecord:
        """Store a payload for the live hook holding ``token``, durably.

        Raises `HookNotFoundError` (a LookupError), writing nothing, when no live hook
        holds the token, when ``name`` is given and the hook's name differs, or when
        ``created_by`` (a run id and a correlation id) is given and the live hook is not
        the one that call of that run created: the payload was checked against that
        hook's schema, and the token has since passed to another hook. Wakes the run
        when nobody holds it (``wake_at`` = now).
        """

    async def get_hook(self, token: str) -> HookRecord | None:
        """The live hook holding ``token``, or None."""

    async def hook_event(self, token: str) -> Event | None:
        """The ``hook_created`` event of the live hook holding ``token``, or None.

        A hook's payload schema and a webhook's configured response live in that
        event; one lookup, not a scan of the run's log.
        """

    async def list_hooks(self, *, run_id: str | None = None) -> list[HookRecord]:
        """Live hooks, oldest first."""

    async def inbox(self, worker_id: str) -> list[InboxItem]:
        """Undelivered payloads of the runs ``worker_id`` holds, oldest first."""


@runtime_checkable
class QueueStore(Protocol):
    """Step tasks: the steps routed to queues, claimed and finished by their workers."""

    async def claim_step_tasks(
        self,
        worker_id: str,
        queues: Collection[str],
        now: datetime,
        limit: int,
        *,
        names: Collection[str] | None = None,
    ) -> list[StepTask]:
        """Take up to ``limit`` queued step tasks of ``queues``, oldest (lowest id) first.

        They become ``claimed`` with ``owner`` = ``worker_id`` and ``updated_at`` =
        now, and come back so. With ``names``, only tasks of those steps are taken: a
        worker never claims a step whose code it does not have. Workers claiming at
        once take different tasks (on PostgreSQL without waiting for each other).
        """

    async def finish_step_task(
        self, worker_id: str, task_id: int, outcome: StepOutcome, now: datetime
    ) -> None:
        """Store how a step task ended, and wake its run.

        Fenced by the task: raises `LeaseLostError` and writes nothing unless the task
        exists and is ``claimed`` by ``worker_id`` (it is gone once its run ended; it
        was put back in its queue if its worker was reaped). The task becomes
        ``finished`` with ``outcome`` (``attempt`` = ``outcome.attempt``,
        ``updated_at`` = now). When nobody holds the run, it becomes due now (an
        earlier ``wake_at`` is kept), as on `resume_hook`; other processes are told.
        Not synced before returning: losing it to a power cut only makes the step
        run again.
        """

    async def step_results(self, worker_id: str) -> list[StepTask]:
        """Finished step tasks of the runs ``worker_id`` holds, in the order they finished."""

    async def step_tasks(self, run_id: str) -> list[StepTask]:
        """The run's step tasks, whatever their status, oldest first."""


@runtime_checkable
class ScheduleStore(Protocol):
    """Schedules (`perdure._schedules`): stored, listed, and moved on tick by tick.

    The store keeps the rows; when a tick is due and which run it starts is decided
    once, in `perdure._schedules`, for every store. Workers racing on one tick are kept
    apart by `advance_schedule`'s compare-and-set and by the tick's run id.
    """

    async def put_schedule(self, schedule: ScheduleRecord) -> ScheduleRecord:
        """Create the schedule, or update the one with its id; durably. The row as stored.

        An update replaces what the schedule is (workflow, cron, tz, input, overlap,
        catchup, start_at, end_at), ``paused``, ``next_fire_at`` and ``updated_at``, and
        keeps ``created_at``, ``last_tick_at`` and ``last_run_id``. Other processes are
        told (`wait_for_change`).
        """

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        """The schedule with this id, or None."""

    async def list_schedules(self) -> list[ScheduleRecord]:
        """Every schedule, by id."""

    async def delete_schedule(self, schedule_id: str) -> bool:
        """Delete the schedule, durably; whether it existed. Its runs are left alone."""

    async def due_schedules(
        self, now: datetime, *, workflows: Collection[str] | None = None, limit: int = 100
    ) -> list[ScheduleRecord]:
        """Unpaused schedules (of ``workflows``) whose ``next_fire_at`` <= now, soonest first."""

    async def next_fire_at(self, *, workflows: Collection[str] | None = None) -> datetime | None:
        """The earliest ``next_fire_at`` of the unpaused schedules (of ``workflows``), or None."""

    async def advance_schedule(
        self,
        schedule_id: str,
        expected: datetime,
        next_fire_at: datetime | None,
        now: datetime,
        *,
        last_run: tuple[datetime, str] | None = None,
    ) -> bool:
        """Move ``next_fire_at`` on from ``expected``; whether it was still ``expected``.

        A compare-and-set: when another worker moved it first (or the schedule was
        updated or deleted meanwhile), nothing is written and False comes back.
        ``last_run`` (a tick and a run id) sets ``last_tick_at`` and ``last_run_id``.
        Not synced before returning: a tick handled again starts the run of the same
        id, which exists.
        """

    async def note_schedule_run(
        self, schedule_id: str, tick: datetime, run_id: str, now: datetime
    ) -> None:
        """Record a run the schedule started outside its ticks (a trigger); no-op if gone."""


@runtime_checkable
class StreamStore(Protocol):
    """Durable streams: each run's named sequences of chunks (`perdure._chunks`).

    Not an index over the log: a step attempt writes its chunks while it runs, from
    whichever worker runs it, without holding the run, so none of these calls is fenced.
    Every write wakes the readers of other processes (`wait_for_change`).
    """

    async def append_chunks(
        self,
        run_id: str,
        stream: str,
        chunks: list[NewChunk],
        now: datetime,
        *,
        attempt: StreamAttempt | None = None,
        supersede: bool = False,
    ) -> int:
        """Append rows to a stream, numbered on from its last; return its new length.

        A chunk whose ``key`` the stream holds already is skipped (a workflow body's
        write made again by a replay) and takes no index. ``attempt`` is the step
        attempt writing them (None: the workflow body). ``supersede`` (with
        ``attempt``), in the same transaction: first retract the chunks of every other
        execution of the same step call, in every stream of the run, that are not
        retracted yet (what an attempt that died left behind), as `retract_chunks`.
        Raises TypeError (nothing written) for a value that is not JSON.
        """

    async def retract_chunks(self, run_id: str, attempt: StreamAttempt, now: datetime) -> int:
        """Retract the chunks of ``attempt`` (that execution only); how many.

        In each stream that holds some, one ``retraction`` row is appended whose value
        is ``{"step": ..., "attempt": ..., "indices": [...]}``. Chunks already
        retracted are left as they are.
        """

    async def read_chunks(
        self, run_id: str, stream: str, *, start: int = 0, limit: int = 1000
    ) -> list[ChunkRow]:
        """Up to ``limit`` rows of the stream from index ``start`` on, in order.

        Each chunk's ``state`` is as it stands now: ``retracted``; ``committed`` when
        written by the workflow body or by the attempt its step's row shows completed
        the call; else ``open``.
        """

    async def stream_lengths(self, run_id: str) -> dict[str, int]:
        """The run's streams: name -> how many rows it holds, by name."""


@runtime_checkable
class FlowStore(Protocol):
    """Flow control (`perdure._flow`): priorities, dedupe keys, debounce, limits.

    Runs' priorities, dedupe keys, debounce and concurrency limits, and the step limits
    every worker shares.
    A run's flow control is written with the run. `claim_runs` takes due runs highest
    priority first, then oldest ``wake_at``, and skips a pending run whose limit key
    already has ``limit_n`` runs holding a slot (a run holds one from its first claim
    until it ends), counting so that workers claiming at once never both take the last
    slot; `next_wake_at` skips such runs too (they are woken by the end of a holder).
    """

    async def create_flow_run(
        self, run: NewRun, flow: RunFlow, now: datetime
    ) -> tuple[RunRecord, bool]:
        """Create a run as `create_run` does, with ``flow`` stored on it, durably.

        With ``flow.dedupe_key``, while a run of the same workflow with that key is
        unended (pending, running or blocked), nothing is created and that run comes
        back with False. If that run is pending, unheld and unstarted, and
        ``flow.not_before`` is set (a debounce), it takes ``run.input`` (its
        ``run_created`` too: no worker has read it) and becomes due at
        ``flow.not_before``. A new run is due at ``flow.not_before`` when given.
        """

    async def run_flow(self, run_id: str) -> RunFlow | None:
        """The run's flow control as stored (``not_before`` unset), or None without any."""

    async def limit_wait(self, run_id: str) -> LimitWait | None:
        """Why a pending, unheld run waits on its limit; None when it does not wait on one."""

    async def limits(self, now: datetime) -> list[LimitUsage]:
        """Each limit key in use, by kind, then key.

        Workflow limits with unended runs, step slots held, and rate windows with
        starts before ``now``.
        """

    async def take_step_slot(
        self, worker_id: str, holder: str, limits: StepLimits, now: datetime
    ) -> StepGrant:
        """Take a step's concurrency slot and a start in its rate's window, or neither.

        ``holder`` is the attempt.
        Slots of workers no longer registered are not counted. Taking a slot ``holder``
        holds already grants it again. A refusal says when the window has room again
        (``retry_at``), or None: a slot must be given back first.
        """

    async def release_step_slot(self, holder: str) -> None:
        """Give back the slot ``holder`` holds (nothing when it holds none)."""


@runtime_checkable
class Store(
    WorkerStore,
    RunStore,
    LogStore,
    TimerStore,
    HookStore,
    QueueStore,
    ScheduleStore,
    StreamStore,
    FlowStore,
    Protocol,
):
    """A run log plus its indexes: every role, and a life cycle.

    All methods are coroutine functions and safe to call concurrently from one event
    loop; a store may also be shared by other processes (SQLite) or machines
    (PostgreSQL) through its database. A component that needs only some roles takes
    only those (the queue runner a `QueueStore`, the run actor a `LogStore`).
    """

    async def open(self) -> None:
        """Create or migrate the schema and get ready. Idempotent."""

    async def close(self) -> None:
        """Release connections and threads. Pending writes are finished first."""

    async def wait_for_change(self, timeout: float) -> bool:
        """Wait until someone else may have committed something, or ``timeout`` seconds.

        Returns True when woken by a change. Used by workers to notice new runs,
        resumes, cancels and finished runs from other processes without polling delays.
        Changes made through this very store object need not be reported: the Engine
        signals its own at once, and a step's append waking every worker would cost a
        pass per step. SQLite reads ``PRAGMA data_version`` on its writer connection
        every few milliseconds (it moves only on other connections' commits); memory
        reports the writes others act on (new runs, resumes, cancels, releases, ended
        runs, queued and finished step tasks); PostgreSQL uses LISTEN/NOTIFY.
        Spurious wake-ups are allowed.
        """
