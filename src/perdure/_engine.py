"""`Engine`, the `Run` handle, and the module-level shortcuts that use the latest Engine."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import uuid
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, cast

from perdure import _current
from perdure._attributes import search_terms
from perdure._clock import Clock, SystemClock
from perdure._deadlines import checked_timeout
from perdure._errors import (
    HookNotFoundError,
    RowFormatError,
    RunNotFoundError,
    StoreError,
    WorkflowCancelled,
    WorkflowFailed,
)
from perdure._flow import LimitUsage, LimitWait, RunFlow, flow_of, limit_flow
from perdure._fork import fork_prefix
from perdure._hooks import WEBHOOK, RecentHooks, stored_payload, unstorable
from perdure._listing import RunPage, check_limit, decode_cursor, encode_cursor
from perdure._log import HookCreated
from perdure._metrics import recorder, resume_outcome
from perdure._records import JSON, Event, NewEvent, NewRun, RunRecord, RunStatus
from perdure._replay import Duration, parse_duration
from perdure._run_ends import RunEnds
from perdure._runtime import Worker, WorkerStatistics, check_poison_after, validate_queues
from perdure._schedule_api import ScheduleMethods
from perdure._serde import decode
from perdure._store_calls import read, write
from perdure._stream_reader import read_stream
from perdure._tracing import link_current_span_to_run, resume_hook_span, start_run_span
from perdure._workflow import Workflow, lookup_workflow
from perdure.stores import Store, open_store
from perdure.stores._failures import failure_of

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Collection, Mapping
    from datetime import datetime
    from types import TracebackType

    from perdure._records import HookRecord, WorkerRecord
    from perdure._streams import StreamItem, StreamRetracted

__all__ = [
    "DEFAULT_DATABASE_URL",
    "Engine",
    "Run",
    "current_engine",
    "get_run",
    "start",
]

P = ParamSpec("P")
R = TypeVar("R")

DEFAULT_DATABASE_URL = "sqlite:///.perdure/perdure.db"
logger = logging.getLogger("perdure")

_RESUME_TRIES = 3
"""Reads of a hook's schema a resume makes when its token changes hands meanwhile."""

_POLL_FALLBACK = 5.0
"""Seconds of quiet after which the worker looks at the store anyway."""


def default_database_url() -> str:
    """``$PERDURE_DATABASE_URL``, else the embedded SQLite file in ``.perdure/``."""
    return os.environ.get("PERDURE_DATABASE_URL") or DEFAULT_DATABASE_URL


def current_engine() -> Engine:
    """The Engine entered most recently and not yet left.

    Raises:
        RuntimeError: when no Engine is running.
    """
    # Only Engines are ever entered there (`Engine.__aenter__`).
    return cast("Engine", _current.latest())


class Run(Generic[R]):
    """A handle on one run: ask its status, wait for its result, cancel it.

    Attributes:
        id: the run id.
        workflow: the workflow's name.
        record: the run's row as it stood when this handle was made or refreshed.
    """

    def __init__(self, engine: Engine, record: RunRecord) -> None:
        self._engine = engine
        self.id = record.id
        self.workflow = record.workflow
        self.record = record

    def __repr__(self) -> str:
        return f"<Run {self.id} of {self.workflow!r}: {self.record.status.value}>"

    async def refresh(self) -> RunRecord:
        """Read the run's row again (through a database outage: see `Engine`)."""
        record = await read(lambda: self._engine.store.get_run(self.id), self._what)
        if record is None:  # pragma: no cover (runs are never deleted)
            raise RunNotFoundError(f"run {self.id!r} no longer exists")
        self.record = _readable(record)
        return record

    async def status(self) -> RunStatus:
        """Where the run is now (a sleeping or waiting run is `running`)."""
        return (await self.refresh()).status

    async def events(self) -> list[Event]:
        """The run's log so far."""
        return await read(lambda: self._engine.store.events(self.id), self._what)

    def stream(
        self, name: str = "default", start: int = 0, *, committed: bool = False
    ) -> AsyncIterator[StreamItem | StreamRetracted]:
        """Follow the run's durable stream ``name`` live: ``async for item in ...``.

        Yields a `StreamItem` (``index``, ``value``) per chunk, from index ``start``
        (below 0: counted from the end, -10 is the last ten), as soon as it is stored,
        and ends when the writer closes the stream or the run ends. A live reader also
        receives a `perdure.StreamRetracted` when a step attempt whose chunks it was
        given failed; with ``committed=True`` only the chunks of the workflow body and
        of attempts that succeeded come, each once, in order. Every reader sees the
        same indices: to resume, start from the index after the last one received.

        Raises (when iterated):
            ValueError: ``name`` is not a stream name.
            TypeError: ``start`` is not an int.
        """
        return read_stream(self._engine, self.id, name, start=start, committed=committed)

    async def streams(self) -> dict[str, int]:
        """The run's durable streams: name -> how many entries each holds so far."""
        return await read(lambda: self._engine.store.stream_lengths(self.id), self._what)

    @property
    def _what(self) -> str:
        return f"reading run {self.id!r}"

    async def result(self, timeout: float | None = None) -> R:
        """Wait for the run to end and return what the workflow returned.

        It waits through a database outage (a restart, a dropped connection), reading
        again until the database answers: ``timeout`` bounds that too.

        Raises:
            WorkflowFailed: the run failed; carries the error's type, message, traceback.
            WorkflowCancelled: the run was cancelled.
            TimeoutError: ``timeout`` seconds passed first.
            StoreError: the database failed in a way no retry mends.
        """
        engine = self._engine
        ends = engine.run_ends
        async with asyncio.timeout(timeout):
            while True:
                # Set when this run ends or is let go here, or when other processes
                # commit something.
                changed = ends.waiter(self.id)
                ended = ends.outcome(self.id)
                if ended is not None:  # its end was committed here: nothing to read
                    return self._outcome_of(ended.status, ended.output, ended.error)
                worker = engine.worker
                if worker is None or not worker.holds(self.id):
                    # Its end, if it ends here, comes with the event: no read until then.
                    record = await self.refresh()
                    if record.status.is_terminal:
                        return self._outcome(record)
                await changed.wait()

    def _outcome(self, record: RunRecord) -> R:
        return self._outcome_of(record.status, record.output, record.error)

    def _outcome_of(self, status: RunStatus, output: JSON | None, error: JSON | None) -> R:
        if status is RunStatus.CANCELLED:
            reason = (error if isinstance(error, dict) else {}).get("message")  # a deadline's
            raise WorkflowCancelled(self.id, reason if isinstance(reason, str) else None)
        if status is RunStatus.FAILED:
            error = error if isinstance(error, dict) else {}
            raise WorkflowFailed(
                str(error.get("message", "")),
                run_id=self.id,
                type=str(error.get("type", "builtins.Exception")),
                traceback=error.get("traceback"),
            )
        spec = lookup_workflow(self.workflow)
        if spec is None:
            value: R = decode(output, Any, where=f"result of run {self.id}")
            return value
        result: R = spec.codec.decode_result(output)
        return result

    async def cancel(self) -> None:
        """Ask for the run to be cancelled; the request is stored before this returns.

        The workflow sees `asyncio.CancelledError` at its next await; its hooks are
        disposed and its timers removed. Cancelling an ended run does nothing.
        """
        await self._engine.cancel(self.id)


class Engine(ScheduleMethods):
    """Opens a store, runs a worker, and starts, finds and steers runs.

    Use it as an async context manager. Entering it opens (or creates) the store and
    starts a worker, which first takes over the runs of processes that died. Leaving
    it hands every run it holds back at once, so another process continues them
    without waiting.

    Its calls ride out a database outage (a PostgreSQL restart, a dropped connection,
    a SQLite file another process keeps locked) as its worker does: reads try again,
    pausing up to 2 s between tries, until the database answers, within the caller's
    own deadline (``run.result(timeout=...)``, or ``asyncio.timeout`` around any call).
    Writes try again when that cannot store them twice: `start` and `rerun` (the new
    run's id is chosen before the first try) and `cancel` always, `resume_hook` when
    the failure shows nothing was written. Otherwise, and for a failure no retry mends
    (a disk I/O error, a corrupt file), they raise `StoreError`, whose
    ``maybe_stored`` says whether the write may have been stored; never the database
    driver's own exception.

    Args:
        url: ``sqlite:///path.db`` (relative) or ``sqlite:////abs/path.db``, or
            ``memory://``; defaults to ``$PERDURE_DATABASE_URL``, else
            ``sqlite:///.perdure/perdure.db``.
        worker: run a worker in this process; False for a process that only starts
            runs or resumes hooks.
        store: a store object to use instead of ``url`` (tests, custom backends).
        clock: the clock; `perdure.testing.FakeClock` makes sleeps instant in tests.
        max_concurrent_steps: steps this worker runs at once (its runs' steps and the
            step tasks of its queues together).
        max_active_runs: runs this worker holds in memory at once.
        evict_after: how long a run waiting only on sleeps, hooks or steps routed to
            queues stays in memory before it is handed back to the store (and
            replayed when it wakes).
        worker_id: the worker's id (by default host, pid and a random suffix).
        shutdown_grace: on leaving, how long steps already running may take to finish
            (they start no new ones) before every run is handed back; 0 hands back at
            once and the steps in flight run again elsewhere.
        lease: on PostgreSQL, how long a worker that stops heartbeating (dead, hung,
            or cut off from the database) keeps its runs before other workers take
            them over (default 10 s). Workers heartbeat several times per lease.
            Ignored with ``store`` and on SQLite, which sees a dead process at once.
        public_url: the URL perdure's HTTP app is reachable at from outside, mount
            prefix included (``https://example.com/perdure``); webhook URLs start with
            it. Defaults to ``$PERDURE_PUBLIC_URL``.
        queues: the queues this worker serves: it runs the steps marked
            ``@step(queue=name)`` for any of them, whichever worker holds their run.
            A step with a queue never runs on the run's worker itself (unless that
            worker serves the queue and claims the task like any other); steps
            without a queue always do.
        poison_after: how many times in a row a run's recovery may find its worker
            dead, with no progress in between (a step that crashes the process or
            exhausts its memory), before the worker that claims it next blocks it as a
            poison run instead of running it (default 5). A clean hand back, progress
            or an unblock starts the count again.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        worker: bool = True,
        store: Store | None = None,
        clock: Clock | None = None,
        max_concurrent_steps: int = 100,
        max_active_runs: int = 10_000,
        evict_after: Duration = "60s",
        worker_id: str | None = None,
        shutdown_grace: Duration = 0,
        public_url: str | None = None,
        lease: Duration | None = None,
        queues: Collection[str] = (),
        poison_after: int = 5,
    ) -> None:
        self.url = url if url is not None else default_database_url()
        lease_time = parse_duration(lease, what="lease") if lease is not None else None
        self.store: Store = store if store is not None else open_store(self.url, lease=lease_time)
        self.clock: Clock = clock if clock is not None else SystemClock()
        self._run_worker = worker
        self._worker_options: dict[str, Any] = {
            "worker_id": worker_id,
            "max_concurrent_steps": max_concurrent_steps,
            "max_active_runs": max_active_runs,
            "evict_after": parse_duration(evict_after, what="evict_after"),
            "queues": validate_queues(queues),
            "poison_after": check_poison_after(poison_after),
        }
        if self._worker_options["queues"] and not worker:
            raise ValueError("queues= needs a worker to serve them; drop worker=False")
        self.shutdown_grace = parse_duration(shutdown_grace, what="shutdown_grace").total_seconds()
        base = public_url if public_url is not None else os.environ.get("PERDURE_PUBLIC_URL", "")
        self.public_url: str | None = base.rstrip("/") or None
        self.worker: Worker | None = None
        self._changed = asyncio.Event()
        self._changed_handed_out = False
        self.run_ends = RunEnds()
        """The runs that ended here, and what `Run.result` waits on (`perdure._run_ends`)."""
        self._starting = 0
        """Starts under way: one begun while others are takes the ordinary path, so
        that a burst's creates share commits rather than each claiming on its own."""
        self._watcher: asyncio.Task[None] | None = None
        self._entered = False
        self._recent_hooks = RecentHooks()

    # -- life cycle -----------------------------------------------------------------

    async def __aenter__(self) -> Engine:
        if self._entered:
            raise RuntimeError("this Engine is already running")
        try:
            await self.store.open()
        except Exception as exc:
            if failure_of(exc) is None:
                raise
            # Not retried: an Engine that cannot reach its database at start is told so.
            raise StoreError(f"cannot open {self.store!r}: {exc}", maybe_stored=False) from exc
        self._entered = True
        try:
            if self._run_worker:
                self.worker = Worker(
                    self.store,
                    self.clock,
                    on_run_finished=self._run_finished,
                    on_progress=self._progressed,
                    **self._worker_options,
                )
                # The worker's tasks, and so the workflows it runs, inherit this Engine.
                with _current.serving(self):
                    await self.worker.start()
            self._watcher = asyncio.get_running_loop().create_task(self._watch())
        except BaseException:
            await self._shutdown()
            raise
        _current.entered(self)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self._shutdown()

    async def _shutdown(self) -> None:
        _current.left(self)
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
        if self.worker is not None:
            await self.worker.stop(self.shutdown_grace)
            self.worker = None
        if self._entered:
            await self.store.close()
            self._entered = False

    async def _watch(self) -> None:
        # Notifications (LISTEN/NOTIFY, data_version) wake the worker at once; a poke
        # after every `_POLL_FALLBACK` seconds of quiet bounds the delay should one ever
        # be missed.
        loop = asyncio.get_running_loop()
        last_signal = loop.time()
        failing = False
        while True:
            try:
                changed = await self.store.wait_for_change(1.0)
            except Exception:
                if not failing:  # once per outage, not once a second
                    logger.exception("watching the store for changes failed; retrying")
                failing = True
                await asyncio.sleep(1.0)
                changed = True
            else:
                failing = False
            if changed or loop.time() - last_signal >= _POLL_FALLBACK:
                last_signal = loop.time()
                self._signal()

    def _signal(self) -> None:
        """Something others may act on happened: wake run waiters and the worker too."""
        self.run_ends.wake_all()
        self._progressed()
        if self.worker is not None:
            self.worker.poke()

    def _progressed(self) -> None:
        # Wake whoever waits on `changed()`, but not the worker: a step's append is no
        # news to it, and a pass per step would cost more than the step. An event that
        # `changed()` never handed out has nobody to wake, and stays for the next one.
        if self._changed_handed_out:
            self._changed_handed_out = False
            event, self._changed = self._changed, asyncio.Event()
            event.set()

    def _run_finished(self, run_id: str, terminal: NewEvent | None) -> None:
        # Only this run's waiters look again: waking every `result()` at every end made
        # a thousand concurrent runs cost a million reads.
        self.run_ends.ended(run_id, terminal)
        if terminal is None:  # let go here, not ended: its waiters read the store
            return
        self._progressed()  # the worker pokes itself if the end made room it wants

    def changed(self, run_id: str | None = None) -> asyncio.Event:
        """An event set at the next change this Engine notices.

        That is a run of this process making progress, or another process committing
        something. With ``run_id``, only that run's end in this process, or news from
        another process (which may be its end), sets it: `Run.result` waits so. Wait on
        it in a loop that re-checks what you wait for.
        """
        if run_id is not None:
            return self.run_ends.waiter(run_id)
        self._changed_handed_out = True
        return self._changed

    @property
    def running(self) -> bool:
        """Whether the Engine is entered (its store open) and not yet left.

        Code that outlives an Engine's ``async with`` (an ASGI app mounted in another,
        say) asks before using it.
        """
        return self._entered

    def _require_open(self) -> None:
        if not self._entered:
            raise RuntimeError("the Engine is not running: use `async with Engine(...)`")

    # -- runs -----------------------------------------------------------------------

    async def start(
        self,
        fn: Workflow[P, R],
        *args: Any,
        run_id: str | None = None,
        priority: int = 0,
        dedupe_key: str | None = None,
        debounce: Duration | None = None,
        timeout: Duration | None = None,
        **kwargs: Any,
    ) -> Run[R]:
        """Start a run of workflow ``fn`` with these arguments, durably.

        Idempotent on ``run_id``: starting again with an id that exists returns the
        existing run and starts nothing.

        Flow control (README, "Flow control"): ``priority`` orders the runs waiting for
        a worker or a limit, higher first (default 0; negative waits behind). With
        ``dedupe_key``, while a run of this workflow with that key is pending, running
        or blocked, the start returns that run instead (the key is free again once it
        ends). ``debounce`` (with a ``dedupe_key``): the run starts once the window has
        passed with no other start of the key, with the last start's arguments.

        ``timeout`` (seconds, a timedelta, or text such as ``"1h"``; default the
        workflow's ``@workflow(timeout=...)``): the run is cancelled if it has not ended
        by then, durably (README, "Deadlines"). The deadline is stored with the run.

        Raises:
            TypeError: ``fn`` is not a @workflow, or an argument cannot be serialized
                (nothing is stored).
            ValueError: ``run_id`` belongs to a run of another workflow; or a flow
                option is wrong (a debounce without a dedupe key, a priority that is not
                an int, a concurrency limit's key that is not an argument), naming it.
        """
        self._require_open()
        spec = getattr(fn, "__perdure_workflow__", None)
        if spec is None:
            raise TypeError(f"start() needs a @workflow function, got {fn!r}")
        if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
            raise ValueError(f"run_id must be a non-empty string, got {run_id!r}")
        encoded: JSON = spec.codec.encode_args(args, kwargs)
        flow = flow_of(
            spec, args, kwargs, priority=priority, dedupe_key=dedupe_key, debounce=debounce,
            now=self.clock.now(),
        )  # fmt: skip
        span = checked_timeout(timeout, what="timeout") if timeout is not None else spec.timeout
        now = self.clock.now()  # its created_at too: the deadline is that long after it
        deadline = None if span is None else now + span
        new = NewRun(
            run_id or uuid.uuid4().hex, spec.name, encoded, spec.version, deadline=deadline
        )
        worker = self.worker
        self._starting += 1
        try:
            if (
                flow is None
                and self._starting == 1
                and worker is not None
                and worker.reserve_eager(spec.name)
            ):
                record, created = await self._create_eager(new, worker, now)
            else:
                record, created = await self._create(new, flow, now=now)
        finally:
            self._starting -= 1
        if not created and record.workflow != spec.name:
            raise ValueError(
                f"run id {new.id!r} already belongs to a run of workflow {record.workflow!r}"
            )
        return Run(self, record)

    async def _again(self, run_id: str) -> NewRun:
        """A new run of ``run_id``'s workflow and input, for `rerun` and `fork`.

        It records the version of the workflow this process defines (the latest code),
        else the original run's; and the original's timeout (from its start), else the
        workflow's, counted from now.
        """
        self._require_open()
        original = await read(lambda: self.store.get_run(run_id), f"reading run {run_id!r}")
        if original is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        _readable(original)
        spec = lookup_workflow(original.workflow)
        version = spec.version if spec is not None else original.version
        span = spec.timeout if spec is not None else None
        if original.deadline_at is not None:
            span = original.deadline_at - original.created_at
        deadline = None if span is None else self.clock.now() + span
        return NewRun(
            uuid.uuid4().hex, original.workflow, original.input, version, deadline=deadline
        )

    async def rerun(self, run_id: str) -> Run[Any]:
        """Start a new run of ``run_id``'s workflow with the same input, on today's code.

        The new run records the version of the workflow this process defines (the
        latest code), else the original run's version; a worker that defines the
        workflow runs it. The input is reused as stored: it is not decoded here, so
        this process need not define the workflow.

        Raises:
            RunNotFoundError: no run has that id (it is also a LookupError).
            RowFormatError: the run's row cannot be read (a ValueError naming the column).
        """
        new = await self._again(run_id)
        spec = lookup_workflow(new.workflow)  # held to its workflow's limit, if defined here
        flow = limit_flow(spec, new.input) if spec is not None else None
        record, _ = await self._create(new, flow)
        return Run(self, record)

    async def fork(self, run_id: str, *, from_step: str) -> Run[Any]:
        """Start a new run whose log is ``run_id``'s up to ``from_step``, on today's code.

        The fork's log holds every event the original logged before the first event of
        ``from_step`` (a correlation id such as ``"charge#1"``, as `perdure show` lists
        them), and its ``run_created`` names the original (``forked_from``). The calls
        before that point replay from their recorded results and are not executed
        again; ``from_step`` and everything after it run on the code of the worker that
        takes the fork, which records this process's version of the workflow (else the
        original's). The run and its log are stored at once, durably, before any worker
        can take it. See `perdure._fork` for what is copied, and why a fork point where
        the original holds a live hook is refused.

        Raises:
            RunNotFoundError: no run has that id (it is also a LookupError).
            ValueError: the log holds no call ``from_step`` (the message names the step
                ids it holds), or a hook of the original is live at that point.
            RowFormatError: the run's row cannot be read (a ValueError naming the column).
        """
        new = await self._again(run_id)
        events = await read(lambda: self.store.events(run_id), f"reading run {run_id!r}'s log")
        prefix = fork_prefix(run_id, events, from_step)
        now = self.clock.now()
        with start_run_span(new.id, new.workflow):
            record, _ = await write(
                lambda: self.store.fork_run(new, run_id, prefix, now),
                f"forking run {run_id!r}",
                idempotent=True,
            )
        self._signal()
        return Run(self, record)

    async def _create(
        self, new: NewRun, flow: RunFlow | None = None, *, now: datetime | None = None
    ) -> tuple[RunRecord, bool]:
        """Store a new run (in a start span) and wake the worker; the row, and if it is new.

        Tried again through an outage: creating is idempotent on the run's id, chosen
        before the first try, so a try whose answer was lost is found by the next.
        ``now``: its created_at (default: the clock's now).
        """
        now = now if now is not None else self.clock.now()
        tries = 0

        async def create() -> tuple[RunRecord, bool]:
            nonlocal tries
            tries += 1
            if flow is not None:  # with its priority, dedupe key, debounce or limit
                return await self.store.create_flow_run(new, flow, now)
            return await self.store.create_run(new, now)

        with start_run_span(new.id, new.workflow):
            record, created = await write(create, f"starting run {new.id!r}", idempotent=True)
        if created or tries > 1:  # an earlier try may have created it
            self._signal()
        return record, created

    async def _create_eager(
        self, new: NewRun, worker: Worker, now: datetime
    ) -> tuple[RunRecord, bool]:
        """Store a new run held by this process's worker, which begins it at once.

        The eager start (issue 16): the create and the claim in one transaction, and
        the run handed straight to the worker, with no wake-up and no claim query. The
        worker reserved its room (`Worker.reserve_eager`); whatever the store answers,
        `Worker.adopt_eager` begins the run or gives the room back. A run the store
        did not let this worker hold (one that existed) wakes the worker as usual.
        """
        tries = 0
        answer: RunRecord | None = None

        async def create() -> tuple[RunRecord, bool]:
            nonlocal tries
            tries += 1
            return await self.store.create_run(new, now, claim_for=worker.id)

        try:
            with start_run_span(new.id, new.workflow):
                record, created = await write(create, f"starting run {new.id!r}", idempotent=True)
            if created or tries > 1:  # an earlier try may have created it, held here
                answer = record
        finally:
            worker.adopt_eager(answer)
        if (created or tries > 1) and record.owner != worker.id:
            self._signal()
        return record, created

    async def get_run(self, run_id: str) -> Run[Any]:
        """The run with this id.

        Raises:
            RunNotFoundError: no run has that id (it is also a LookupError).
            RowFormatError: the run's row holds what this release cannot read (damaged,
                or a newer release's status); a ValueError naming the columns.
                `list_runs` lists such a run, flagged (``record.malformed``).
        """
        self._require_open()
        record = await read(lambda: self.store.get_run(run_id), f"reading run {run_id!r}")
        if record is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        return Run(self, _readable(record))

    async def list_runs(
        self,
        *,
        status: RunStatus | str | None = None,
        workflow: str | None = None,
        limit: int = 100,
        attributes: Mapping[str, object] | None = None,
        after: str | None = None,
        parent_id: str | None = None,
    ) -> list[Run[Any]]:
        """Runs, newest first, optionally only those with a status or of a workflow.

        ``parent_id``: only the child runs of that run (`perdure.start_child`).
        A run whose row cannot be read in full is listed all the same, flagged: its
        ``record.malformed`` names each column and why (see `RunRecord.malformed`).

        ``attributes``: only runs having all of these (`perdure.set_attributes`), each
        value compared as text (``{"items": 3}`` finds 3 and "3"). ``after``: the runs
        after that cursor (a page's ``next``, see `list_runs_page`).

        Raises:
            TypeError, ValueError: a bad attribute (naming it) or cursor.
        """
        self._require_open()
        wanted = RunStatus(status) if status is not None else None
        terms = search_terms(attributes)
        before = decode_cursor(after) if after is not None else None
        records = await read(
            lambda: self.store.list_runs(
                status=wanted,
                workflow=workflow,
                limit=limit,
                parent_id=parent_id,
                attributes=terms,
                before=before,
            ),
            "listing runs",
        )
        return [Run(self, record) for record in records]

    async def list_workers(self) -> list[WorkerRecord]:
        """The live workers, oldest first: id, host, pid, what each defines, heartbeat.

        What each defines is its workflows with their code versions. A worker that
        stopped heartbeating for longer than the lease (SQLite: whose process is gone)
        is not listed.
        """
        self._require_open()
        now = self.clock.now()
        return await read(lambda: self.store.live_workers(now), "listing workers")

    async def list_runs_page(
        self, *, limit: int = 100, after: str | None = None, **filters: Any
    ) -> RunPage[Run[Any]]:
        """A page of runs, newest first, and the cursor of the next page.

        ``filters`` are `list_runs`'s (``status``, ``workflow``, ``attributes``, ...).
        Pass the page's ``next`` as ``after`` for the next page (None: the last page).
        Pages are stable while runs are created: a run created since the first page
        sorts before it, so it never shifts a later page, and no run comes twice.

        Raises:
            ValueError: ``limit`` is not an int from 1 to 1000, or ``after`` is not a
                cursor a page gave.
        """
        limit = check_limit(limit)
        runs = await self.list_runs(limit=limit + 1, after=after, **filters)
        if len(runs) <= limit:
            return RunPage(runs, None)
        return RunPage(runs[:limit], encode_cursor(runs[limit - 1].record))

    async def cancel(self, run_id: str) -> RunRecord:
        """Ask for a run to be cancelled (see `Run.cancel`); the run as it now stands.

        A pending run is cancelled at once, a running one at its next await; an ended
        run is left as it is.

        Raises:
            RunNotFoundError: no run has that id.
        """
        self._require_open()
        now = self.clock.now()
        # A cancel request is stored once however often it is sent: always tried again.
        record = await write(
            lambda: self.store.request_cancel(run_id, now),
            f"cancelling run {run_id!r}",
            idempotent=True,
        )
        if record is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        self._signal()
        return record

    async def unblock(self, run_id: str) -> RunRecord:
        """Try a blocked run again now; the run as it now stands.

        The run is due at once: a worker that defines its workflow replays it, and it
        continues, or blocks again with a new reason (the log keeps both). A run that
        is not blocked is left as it is. Workers also try a blocked run by themselves
        when their code of its workflow differs from the code that blocked it.

        Raises:
            RunNotFoundError: no run has that id (it is also a LookupError).
        """
        self._require_open()
        now = self.clock.now()
        # Unblocking a run that is no longer blocked does nothing: always tried again.
        record = await write(
            lambda: self.store.unblock_run(run_id, now, by=None),
            f"unblocking run {run_id!r}",
            idempotent=True,
        )
        if record is None:
            raise RunNotFoundError(f"no run with id {run_id!r}")
        self._signal()
        return record

    async def resume_hook(self, token: str, payload: Any, *, name: str | None = None) -> HookRecord:
        """Send ``payload`` to the live hook holding ``token``, and wake its run.

        Every way of resuming a hook comes here: `Hook.resume`, ``perdure resume-hook``,
        and the HTTP API's hooks and webhooks. When this process defines the hook
        (`define_hook`, found by the hook's name), the payload is validated against its
        type and stored encoded; otherwise it is stored as given, and must be JSON.
        Either way it must pass the JSON Schema the run stored with the hook (see
        `perdure._payload_schema`), so a process that does not know the hook's type
        cannot store a payload its workflow would fail to decode. Nothing is written
        unless all is well; the call returns once the payload is stored durably.

        Args:
            token: the live hook's token.
            payload: what to send: JSON, or a value of the hook's schema.
            name: only a hook of this name takes the payload (`Hook.resume` passes its
                own). A webhook's token takes one only with ``name=WEBHOOK``: its
                payloads are the HTTP requests perdure's HTTP app stores.

        Raises:
            HookNotFoundError: no live hook (of that name) holds the token (a
                LookupError).
            ValueError: the payload fails the hook's schema (naming each wrong field),
                cannot be encoded, or holds what no database can keep.
        """
        self._require_open()
        metrics = recorder()
        try:
            record = await self._resume(token, payload, name)
        except Exception as exc:
            if metrics is not None:
                metrics.hook_resume(resume_outcome(exc), webhook=name == WEBHOOK)
            raise
        if metrics is not None:
            metrics.hook_resume("resumed", webhook=name == WEBHOOK)
        self._signal()
        return record

    async def _resume(self, token: str, payload: Any, name: str | None) -> HookRecord:
        if not isinstance(token, str) or not token or unstorable(token, "token") is not None:
            raise HookNotFoundError(f"no live hook holds token {token!r}")  # none can hold it
        with resume_hook_span(token):
            record = None
            remembered = self._recent_hooks.get(token)
            if remembered is not None:  # checked against it; if it is stale, read it again
                with contextlib.suppress(HookNotFoundError, ValueError):
                    record = await self._resume_checked(token, payload, name, *remembered)
            for _ in range(_RESUME_TRIES):
                if record is not None:
                    break
                run_id, created = await self._live_hook(token)
                record = await self._resume_checked(token, payload, name, run_id, created)
            if record is None:  # the token changed hands at every try
                raise HookNotFoundError(f"no live hook holds token {token!r} for long enough")
            link_current_span_to_run(record.run_id)
        return record

    async def _live_hook(self, token: str) -> tuple[str, HookCreated]:
        """The run and the ``hook_created`` of the live hook holding ``token``.

        That event says the hook's name (how to encode a payload) and the schema every
        payload must pass.
        """
        event = await read(lambda: self.store.hook_event(token), f"reading hook {token!r}")
        if event is None:
            self._recent_hooks.forget(token)
            raise HookNotFoundError(f"no live hook holds token {token!r}")
        created = HookCreated.of(event)
        self._recent_hooks.remember(token, event.run_id, created)
        return event.run_id, created

    async def _resume_checked(
        self, token: str, payload: Any, name: str | None, run_id: str, created: HookCreated
    ) -> HookRecord | None:
        """Check the payload against the hook ``created`` describes; store it for that hook.

        None when that hook no longer holds the token: the caller reads the one that
        does (if any) and checks the payload again against its schema.
        """
        if name is None and created.kind == WEBHOOK:
            raise HookNotFoundError(f"no live hook holds token {token!r}")
        if name is not None and created.name != name:
            raise HookNotFoundError(
                f"the live hook holding token {token!r} is named {created.name!r}, not {name!r}"
            )
        encoded = stored_payload(created.name, payload, created.schema)
        # A payload sent twice is received twice: tried again only when nothing was
        # written; a try whose answer was lost raises StoreError(maybe_stored=True).
        now, hook = self.clock.now(), (run_id, created.correlation_id)
        try:
            return await write(
                lambda: self.store.resume_hook(
                    token, encoded, now, name=created.name, created_by=hook
                ),
                f"resuming hook {token!r}",
                idempotent=False,
            )
        except HookNotFoundError:
            self._recent_hooks.forget(token)
            return None  # gone since it was read (the next read says so), or another's now

    async def limits(self) -> list[LimitUsage]:
        """Each concurrency and rate limit in use across all workers, as it stands.

        Workflow limits with unended runs (slots held, runs waiting), step concurrency
        slots held, and rate windows with starts; by kind, then key. ``perdure limits``
        prints it.
        """
        self._require_open()
        now = self.clock.now()
        return await read(lambda: self.store.limits(now), "reading limits")

    async def limit_wait(self, run_id: str) -> LimitWait | None:
        """Why a pending run waits on its workflow's concurrency limit, or None.

        Its ``reason`` reads "waiting for a slot: customer=acme, 5 of 5 in use; 2 ahead".
        """
        self._require_open()
        return await read(lambda: self.store.limit_wait(run_id), f"reading run {run_id!r}")

    async def trigger_schedule(self, schedule_id: str) -> Run[Any]:
        """Start one run of the schedule now, outside its ticks; the run.

        The run has the schedule's workflow and arguments, the id
        ``<schedule_id>@manual-<random>``, and the attributes ``schedule`` and ``tick``
        (now); it counts as the schedule's last run for overlap. A paused schedule may
        be triggered. The other schedule calls are in `perdure._schedule_api`.

        Raises:
            LookupError: no schedule has that id.
        """
        return Run(self, await self._trigger(schedule_id))

    async def backfill_schedule(
        self, schedule_id: str, start: datetime, end: datetime
    ) -> list[Run[Any]]:
        """Start one run per tick of the schedule in ``[start, end]``; the runs, in order.

        Idempotent: each tick's run has the id a live tick would have, so a tick that
        already has a run (from the schedule or an earlier backfill) keeps it, and
        backfilling a range twice starts nothing the second time. Overlap is not
        applied (the runs may run side by side); a paused schedule may be backfilled.

        Raises:
            LookupError: no schedule has that id.
            ValueError: ``start`` or ``end`` is not an aware datetime, ``end`` is
                before ``start``, or the range holds more than 10,000 ticks; nothing
                is started.
        """
        return [Run(self, record) for record in await self._backfill(schedule_id, start, end)]

    def statistics(self) -> WorkerStatistics | None:
        """The worker's statistics, or None when this Engine runs no worker."""
        return self.worker.statistics() if self.worker is not None else None


async def start(fn: Workflow[P, R], *args: Any, run_id: str | None = None, **kwargs: Any) -> Run[R]:
    """`Engine.start` on the Engine entered most recently."""
    run: Run[R] = await current_engine().start(fn, *args, run_id=run_id, **kwargs)
    return run


def _readable(record: RunRecord) -> RunRecord:
    """The record, unless its row could not be read in full (then the error saying so).

    A caller asking for one run wants its status and result: a stand-in for a column
    that could not be read (see `RunRecord.malformed`) would answer wrongly.
    """
    if record.malformed is not None:
        raise RowFormatError("runs", record.id, record.malformed)
    return record


async def get_run(run_id: str) -> Run[Any]:
    """`Engine.get_run` on the Engine entered most recently."""
    return await current_engine().get_run(run_id)
