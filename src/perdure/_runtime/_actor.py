"""One run held by a worker: its instance, its log writer, its steps and timers.

The actor is the only writer of its run's log, and it writes in one ordered stream:
events are buffered and a single flusher appends them, a batch at a time. Outcomes
(a step's result, a timer, a hook payload) ride in the batch that logs them and are
delivered to the workflow only once that batch is committed, in log order. So a
workflow never acts on something that is not stored, and a replay sees outcomes in the
order the live run saw them.

A trivial step costs one append: its task is started before the flusher is scheduled,
so when it finishes at once its ``step_completed`` joins its ``step_started`` in the
same batch, and the store's group commit folds batches of concurrent runs together.

A step's attempts are run by the worker's `StepAttempts` (the loop queues use too); the
actor is where they report (`AttemptOutcomes`), and it logs what they report. The actor
sees the worker only as a `RunHost`.

A stored cancel request wins over whatever comes after it. The worker's pass tells the
actor of a request, but the pass may come late: meanwhile a step may finish and the
workflow would begin its next one, or return. So the store refuses every append of a
run whose cancel is requested, but the one that ends it cancelled
(`CancelRequestedError`, checked in the append's own transaction), and the actor then
cancels the workflow instead of delivering what the refused batch carried. Outcomes
reach the workflow only once their batch is committed, so a step whose result the
store refused is never seen by the workflow, no step begins after it, and a
``run_completed`` or ``run_failed`` written after the request never lands. The refused
events themselves are logged before ``run_cancelled``: a step that finished meanwhile
keeps its recorded result. A run claimed with a request already stored starts no step
at all. (A cancel stored while the append that delivers a step's predecessor is on its
way back finds that step begun: the step is run from the moment its predecessor's
result is committed, which is the point at which the run decided to call it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from perdure import _log
from perdure._deadlines import deadline_reason, earliest_deadline
from perdure._errors import (
    CancelRequestedError,
    HookConflictError,
    LeaseLostError,
    NonDeterminismError,
    RowFormatError,
)
from perdure._flow import limit_flow
from perdure._log import LogFormatError
from perdure._metrics import recorder
from perdure._records import (
    Event,
    EventType,
    InboxItem,
    NewEvent,
    NewRun,
    RunRecord,
    RunStatus,
    StepTask,
)
from perdure._replay import (
    BlockRun,
    CancelRun,
    CancelTimer,
    ChildDone,
    Command,
    CompleteRun,
    Completion,
    CreateHook,
    DisposeHook,
    FailRun,
    HookPayload,
    HookRejected,
    MarkPatch,
    ScheduleStep,
    SetAttributes,
    StartChild,
    StartTimer,
    StepDone,
    StepFailed,
    TimerFired,
    WorkflowInstance,
    WorkflowSpec,
    WriteStream,
    error_record,
    replay,
)
from perdure._runtime._queues import outcome_events
from perdure._runtime._tasks import EAGER_TASKS, new_task
from perdure._streams import body_stored, body_writing
from perdure._tracing import RunSpan
from perdure._workflow import WorkflowMetadata
from perdure.stores import FAR_FUTURE

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from perdure._clock import TimerHandle
    from perdure._records import JSON
    from perdure._runtime._hosts import RunHost
    from perdure._workflow import StepMetadata

__all__ = ["RunActor"]

logger = logging.getLogger("perdure.worker")


class _StoreFailed(Exception):
    """The store failed, not the run: the run is handed back and tried again."""


@contextlib.contextmanager
def _store_call() -> Iterator[None]:
    """Tell the store's failures (the database down, a connection lost) from the run's."""
    try:
        yield
    except (LeaseLostError, CancelRequestedError, LogFormatError):
        raise  # a log that cannot be read is the run's, not the store's: no retry mends it
    except Exception as exc:
        raise _StoreFailed(f"{type(exc).__name__}: {exc}") from exc


@dataclass(slots=True)
class _Batch:
    events: list[NewEvent] = field(default_factory=list)
    completions: list[Completion] = field(default_factory=list)
    inbox: list[int] = field(default_factory=list)
    durable: bool = False
    tasks: list[int] = field(default_factory=list)
    queues_task: bool = False
    """It logs a step routed to a queue (so the store queues a task)."""
    terminal: NewEvent | None = None
    """Its run's terminal event, if it logs it (always the batch's last)."""
    children: list[StartChild] = field(default_factory=list)
    """The child runs it logs the start of: created just before it is appended."""


_NO_STEPS: dict[str, asyncio.Task[None]] = {}
"""`RunActor._steps` while no step runs, shared by every actor (most runs in memory
sleep): so it stays empty, as only `_start_step` adds a step, to a dict of its own."""


class RunActor:
    """Drives one run on one worker, from claim to its end, eviction or loss.

    A worker holds one per run in memory, a hundred thousand of them if their runs
    sleep: hence slots, sets made on first use, and nothing kept that a suspended run
    no longer needs (its record, once started; its flusher task, once done).
    """

    __slots__ = (
        "_attempts",
        "_backing_off",
        "_blocker",
        "_buffer",
        "_cancel_pending",
        "_cancel_reason",
        "_children",
        "_deadline",
        "_ended",
        "_evict_timer",
        "_flusher",
        "_inbox_read",
        "_inbox_seen",
        "_parent",
        "_record",
        "_remote",
        "_root",
        "_span",
        "_started_on",
        "_steps",
        "_streaming",
        "_tasks_seen",
        "_timers",
        "finished",
        "gone",
        "host",
        "instance",
        "ready",
        "run_id",
        "spec",
    )

    def __init__(self, host: RunHost, record: RunRecord, spec: WorkflowSpec) -> None:
        self.host = host
        self.run_id = record.id
        self._record: RunRecord | None = record
        """The claimed record, until `begin` has made the instance from it."""
        self.spec = spec
        self.instance: WorkflowInstance | None = None
        self.ready = False
        self.finished = False
        self.gone = False
        self._buffer: _Batch | None = None
        self._streaming = False
        """Chunks of the workflow body are logged and not yet appended."""
        """Events waiting to be written; None when there are none (a batch is ~300 bytes)."""
        self._flusher: asyncio.Task[None] | None = None
        """The task writing the buffer; None again once it is done."""
        self._steps: dict[str, asyncio.Task[None]] = _NO_STEPS
        """The tasks of the steps running here, by correlation id."""
        self._timers: dict[str, TimerHandle] = {}
        """The clock's timer of each sleep, by correlation id (its ``when`` is the wake-up)."""
        self._inbox_seen: set[int] | None = None
        self._remote: dict[str, ScheduleStep] | None = None
        """Steps a queue's workers run for this run, by correlation id, until logged."""
        self._tasks_seen: set[int] | None = None
        self._cancel_pending = False
        self._cancel_reason: str | None = None
        """Why the run is cancelled, when not by a caller: its deadline passed."""
        self._deadline: TimerHandle | None = None
        """The clock's timer of the run's deadline (``timeout=``), while armed."""
        self._evict_timer: TimerHandle | None = None
        self._inbox_read = False  # not evicted before the worker has read our inbox once
        self._backing_off = 0
        self._blocker: asyncio.Task[None] | None = None
        self._started_on = record.version
        """The code version the run started on (for a blocked run's reason)."""
        """The task that blocks the run, once its workflow has blocked it."""
        """How many of `_steps` wait out a retry's backoff (they do not keep it busy)."""
        self._children: dict[str, tuple[str, bool]] | None = None
        """Child runs started and not ended, by correlation id: their run id, and whether
        detached (made on first use)."""
        self._attempts: dict[str, tuple[str, int]] | None = None
        """The name and attempt of each step call that runs (or waits to retry), by
        correlation id: logged as ``step_cancelled`` if the run is cancelled meanwhile."""
        self._ended = False
        """Its terminal event is emitted: nothing may be logged after it."""
        self._parent = record.parent_id
        self._root = record.root_id or record.id
        """The top of its tree of runs: its children's root."""
        self._span = RunSpan(
            record.id,
            spec.name,
            replayed=record.status is not RunStatus.PENDING,
            trace_of=record.root_id,
        )

    # -- start ----------------------------------------------------------------------

    async def begin(self) -> None:
        """Start the run fresh, or bring it back from its log by replay."""
        # A request stored before the claim: the run starts no step, and ends cancelled.
        self._cancel_pending = self._cancel_pending or self._claimed().cancel_requested
        self._arm_deadline(self._claimed())
        try:
            if self._claimed().status is RunStatus.PENDING:
                await self._start_fresh()
            else:
                await self._resume_from_log()
        except LeaseLostError:
            self._abandon()
            return
        except _StoreFailed as exc:
            logger.warning("could not start run %s (%s); handing it back", self.run_id, exc)
            self.host.hand_back(self)
            return
        except LogFormatError as exc:
            self._set_aside(exc)
        except Exception as exc:  # a run that cannot even start fails, loudly and logged
            logger.exception("run %s could not be started", self.run_id)
            self._fail_outright(exc)
        finally:
            self._record = None  # its input now lives in the instance's coroutine
        self.ready = True
        if self._cancel_pending:
            self.cancel()
        self.host.ready(self)  # inbox items may be waiting for us now that we are ready
        self._settled()

    def _claimed(self) -> RunRecord:
        record = self._record
        if record is None:
            raise RuntimeError(f"run {self.run_id} was already begun")
        return record

    def _make_instance(self, started_at: datetime) -> WorkflowInstance:
        args, kwargs = self.spec.codec.decode_args(self._claimed().input)
        return WorkflowInstance(self.spec, self.run_id, args, kwargs, started_at=started_at)

    async def _start_fresh(self) -> None:
        now = self.host.clock.now()
        if self._cancel_pending:  # cancelled before it began: its code never runs
            self._end(self._cancelled())
            return
        try:
            with _store_call():
                await self.host.store.append(
                    self.host.id,
                    self.run_id,
                    [_log.run_started(worker=self.host.id)],
                    now,
                )
        except CancelRequestedError:  # requested since the claim
            self._end(self._cancelled())
            return
        self.instance = self._make_instance(now)
        if (metrics := recorder()) is not None:  # due since it was created
            metrics.run_started(self.spec.name, (now - self._claimed().created_at).total_seconds())
        self._process(self.instance.start(now))

    async def _resume_from_log(self) -> None:
        with _store_call():
            events = await self.host.store.events(self.run_id)
        started = next((e for e in events if e.type is EventType.RUN_STARTED), None)
        if started is None:  # claimed between run_created and run_started: start over
            await self._start_fresh()
            return
        # From the log itself, not the replay: a cancel reaches them even if the replay
        # diverges (a blocked run that is cancelled).
        children = _children_in_flight(events)
        for cid, (child_id, detached) in children.items():
            self._child_started(cid, child_id, detached=detached)
        self.instance = self._make_instance(started.created_at)
        self.host.replayed()
        try:
            result = replay(self.instance, events)
        except NonDeterminismError as exc:
            # The code changed under the run: set it aside, never fail it. A worker whose
            # code differs tries it again.
            self._block(f"{exc} {self._versions()}")
            return
        record = self._claimed()
        if record.status is RunStatus.BLOCKED and not any(
            isinstance(command, BlockRun) for command in result.commands
        ):
            # Claimed while blocked (a cancel or a payload woke it) and this code replays
            # it: it is no longer blocked.
            with _store_call():
                await self.host.store.unblock_run(
                    self.run_id, self.host.clock.now(), by=self.host.id
                )
        if record.forked_from is not None and children:
            with _store_call():
                await self._forked_children(children)
        self._process(result.commands)
        for cid, wake_at in result.timers.items():
            self._arm_timer(cid, wake_at)
        for in_flight in result.steps:
            if in_flight.queue is not None:  # its task waits in the store: await its outcome
                self._await_remote(in_flight.command)
                continue
            if self._cancel_pending:  # `begin` cancels the run next: no attempt begins
                continue
            self._start_step(in_flight.command, in_flight.next_attempt, in_flight.not_before)

    def _versions(self) -> str:
        return (
            f"(the run started on code version {self._started_on or 'unknown'}; this worker's "
            f"code of workflow {self.spec.name!r} is version {self.spec.version})"
        )

    def _block(self, reason: str) -> None:
        """Set the run aside as blocked, once what is buffered is written; let it go."""
        if self._cancel_pending:  # a stored cancel request wins, as everywhere
            self._end(self._cancelled())
            return
        self.finished = True
        self._stop_work()
        self._blocker = asyncio.get_running_loop().create_task(self._write_block(reason))

    async def _write_block(self, reason: str) -> None:
        flusher = self._flusher
        if flusher is not None and not flusher.done():
            await asyncio.wait([flusher])
        if self.gone:
            return
        host = self.host
        event = _log.run_blocked(reason=reason, version=self.spec.version, worker=host.id)
        try:
            with _store_call():
                await host.store.block_run(host.id, self.run_id, event, host.clock.now())
        except LeaseLostError:
            self._abandon()
            return
        except _StoreFailed as exc:
            logger.warning("could not block run %s (%s); handing it back", self.run_id, exc)
            host.hand_back(self)
            return
        logger.warning(
            "run %s of workflow %r is blocked, not failed (perdure unblock %s tries it again): %s",
            self.run_id,
            self.spec.name,
            self.run_id,
            reason,
        )
        self._span.end(outcome="blocked")
        if (metrics := recorder()) is not None:
            metrics.run_ended(self.spec.name, "blocked", None)
        self._abandon()

    def _set_aside(self, exc: LogFormatError | RowFormatError) -> None:
        """Block a run whose log or rows cannot be read, naming what; said once.

        Handed back, as after a store's failure, it would be claimed and replayed again
        at once, for ever (issue 11): a worker read its log some 700 times a second.
        Blocked, not failed: the row may be mended by hand, or be a newer release's (an
        event type this one does not know), and ``perdure unblock``, or a worker of
        another version, tries the run again. Blocking reads nothing of the log.
        """
        if self.instance is not None:  # a replay that stopped half-way: nothing of it runs
            self.instance.discard()
            self.instance = None
        self._block(f"{exc}\n{self._versions()}")

    def _fail_outright(self, exc: BaseException) -> None:
        self._emit(_log.run_failed(error=error_record(exc)), durable=True)
        self.finished = True

    # -- the ordered log writer -----------------------------------------------------

    def _emit(
        self,
        event: NewEvent,
        *,
        completion: Completion | None = None,
        inbox_id: int | None = None,
        task_id: int | None = None,
        durable: bool = False,
        queues_task: bool = False,
        child: StartChild | None = None,
    ) -> None:
        if self.gone or (self._ended and event.type not in _TERMINAL):
            # A step that caught the CancelledError of its run's end and returned: the
            # log takes nothing after the terminal event.
            return
        batch = self._buffer
        if batch is None:
            batch = self._buffer = _Batch()
        batch.events.append(event)
        if completion is not None:
            batch.completions.append(completion)
        if inbox_id is not None:
            batch.inbox.append(inbox_id)
        if task_id is not None:
            batch.tasks.append(task_id)
        if child is not None:
            batch.children.append(child)
        batch.durable = batch.durable or durable
        if event.type in _TERMINAL:
            batch.terminal = event
        elif queues_task:  # a step_started with a queue
            batch.queues_task = True
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush())
            # Settle once the task is done: from inside it, the run still looks busy, so
            # the fake clock would never jump and a waiting run would never be evicted.
            self._flusher.add_done_callback(lambda _: self._settled())
        self._cancel_evict()

    async def _flush(self) -> None:
        host = self.host
        while self._buffer is not None and not self.gone:
            batch, self._buffer = self._buffer, None
            now = host.clock.now()
            foreign: list[tuple[StartChild, RunRecord]] = []
            try:
                foreign = await self._before_append(batch, now)
                await host.store.append(
                    host.id,
                    self.run_id,
                    batch.events,
                    now,
                    durable=batch.durable,
                    consume_inbox=batch.inbox or None,
                    consume_tasks=batch.tasks or None,
                )
            except LeaseLostError:
                logger.warning("run %s was taken over by another worker", self.run_id)
                self._abandon()
                return
            except CancelRequestedError:
                self._cancel_instead(batch)
                continue
            except HookConflictError as exc:
                self._requeue_with_conflict(batch, exc)
                continue
            except Exception:
                # The append may or may not have committed: whoever takes the run next
                # replays whatever the log holds.
                logger.exception("could not write run %s's log; handing it back", self.run_id)
                self.host.hand_back(self)
                return
            host.progressed()
            if self._streaming:
                self._streamed()
            for command, taken in foreign:
                self._not_our_child(command, taken)
            if batch.queues_task:
                host.poke()  # it may serve the queue, and a store hides its own writes
            for completion in batch.completions:
                if self.gone or self.instance is None or self.instance.finished:
                    break
                self._process(self.instance.deliver(completion, now))
            if batch.terminal is not None:
                self._finish(batch.terminal)
                return
            # One loop turn before the next batch: steps the workflow just started run
            # first, and those that finish at once share this append with their start.
            await asyncio.sleep(0)

    # -- child runs -----------------------------------------------------------------

    def child_run(self, command: StartChild) -> NewRun:
        """The child run a `StartChild` creates: the one place its row is decided."""
        return NewRun(
            command.run_id,
            command.spec.name,
            command.input,
            command.spec.version,
            parent_id=self.run_id,
            root_id=self._root,
            parent_call=command.correlation_id,
            deadline=self._child_deadline(command),
        )

    def _child_deadline(self, command: StartChild) -> datetime | None:
        """A child's deadline: its own ``timeout``, capped by its parent's.

        A child inherits at most its parent's remaining time, unless it is detached
        (`perdure._deadlines`).
        """
        timeout = command.spec.timeout
        own = None if timeout is None else self.host.clock.now() + timeout
        inherited = None if command.detached or self._deadline is None else self._deadline.when
        return earliest_deadline(own, inherited)

    async def _before_append(
        self, batch: _Batch, now: datetime
    ) -> list[tuple[StartChild, RunRecord]]:
        """Store what must be before ``batch``; return the children it starts that are not ours.

        That is the child runs it starts, and, when it ends the run cancelled, the
        cancels of the run's attached children.
        """
        foreign = await self._create_children(batch.children, now) if batch.children else []
        if batch.terminal is not None and batch.terminal.type is EventType.RUN_CANCELLED:
            await self._cancel_children(now)
        return foreign

    def _child_started(self, cid: str, run_id: str, *, detached: bool) -> None:
        if self._children is None:
            self._children = {}
        self._children[cid] = (run_id, detached)

    async def _create_children(
        self, children: list[StartChild], now: datetime
    ) -> list[tuple[StartChild, RunRecord]]:
        """Create the child runs a batch logs the start of, before it is appended.

        Idempotent (the ids are derived, or the workflow's): a crash after this and
        before the append makes the replay create the same runs again, which finds them.
        Returns the children whose id an unrelated run already holds.
        """
        store = self.host.store

        async def create(child: StartChild) -> tuple[RunRecord, bool]:
            new = self.child_run(child)
            flow = limit_flow(child.spec, new.input)  # held to its workflow's limit
            if flow is None:
                return await store.create_run(new, now)
            return await store.create_flow_run(new, flow, now)

        made = await asyncio.gather(*(create(child) for child in children))
        self.host.poke()  # the worker may claim them, and a store hides its own writes
        return [
            (child, record)
            for child, (record, _) in zip(children, made, strict=True)
            if record.parent_id != self.run_id
        ]

    async def _forked_children(self, in_flight: dict[str, tuple[str, bool]]) -> None:
        """End the children a fork's log holds in flight: they are its original's.

        Their ends go to the run that started them. Each gets its end now, if it has
        one, or fails, saying so: a fork never waits for ever.
        """
        for cid, (child_id, _) in in_flight.items():
            child = await self.host.store.get_run(child_id)
            if child is not None and child.parent_id == self.run_id:
                continue
            if child is not None and child.status.is_terminal:
                error = child.error if child.status is RunStatus.FAILED else None
                done = ChildDone(cid, child.id, child.status.value, child.output, error)
            else:
                problem = RuntimeError(
                    f"child run {child_id} was started by the run this one was forked "
                    "from, and had not ended at the fork point: it belongs to that run"
                )
                done = ChildDone(cid, child_id, "failed", None, error_record(problem))
            self._child_ended(cid, done, None)

    def _not_our_child(self, command: StartChild, taken: RunRecord) -> None:
        """The id the workflow chose for a child belongs to another run: the child fails."""
        error = ValueError(
            f"run id {command.run_id!r} already belongs to a run of workflow "
            f"{taken.workflow!r} that is not a child of run {self.run_id}"
        )
        self._child_ended(
            command.correlation_id,
            ChildDone(command.correlation_id, command.run_id, "failed", None, error_record(error)),
            None,
        )

    async def _cancel_children(self, now: datetime) -> None:
        """Ask for the cancel of the attached children not ended, before the run ends.

        Before: a crash in between leaves the run unended, and its next holder cancels
        them again. Each child's own holder does the same for its children, and so on
        down the tree; a detached child is left running.
        """
        attached = [run for run, detached in (self._children or {}).values() if not detached]
        if attached:
            await asyncio.gather(*(self.host.store.request_cancel(run, now) for run in attached))
            self.host.poke()

    def _child_ended(self, cid: str, done: ChildDone, inbox_id: int | None) -> None:
        if self._children is not None:
            self._children.pop(cid, None)
            if not self._children:
                self._children = None
        self._emit(
            _log.child_completed(
                cid, run_id=done.run_id, status=done.status, output=done.output, error=done.error
            ),
            completion=done,
            inbox_id=inbox_id,
        )

    def _receive_child(self, item: InboxItem) -> None:
        """The store's word that a child ended (put in our inbox as the child ended)."""
        cid = item.correlation_id
        if self._children is None or cid not in self._children:
            # Not (or not yet) started as far as this life of the run knows: leave it,
            # the replay that logs that start will take it.
            return
        if self._inbox_seen is None:
            self._inbox_seen = set()
        self._inbox_seen.add(item.id)
        payload = item.payload if isinstance(item.payload, dict) else {}
        status = payload.get("status")
        if item.malformed is not None or status not in ("completed", "failed", "cancelled"):
            problem = RowFormatError("hook_inbox", item.id, item.malformed or {"payload": "?"})
            done = ChildDone(cid, item.token, "failed", None, error_record(problem))
        else:
            error = payload.get("error") if status == "failed" else None
            done = ChildDone(cid, item.token, status, payload.get("output"), error)
        self._child_ended(cid, done, item.id)

    def _requeue_with_conflict(self, batch: _Batch, exc: HookConflictError) -> None:
        token = exc.token
        events: list[NewEvent] = []
        completions = list(batch.completions)
        marked = False
        for event in batch.events:
            if not marked and event.type is EventType.HOOK_CREATED:
                created = _log.HookCreated.of(event, run_id=self.run_id)
                if created.error is None and (token is None or created.token == token):
                    marked = True
                    message = str(exc)
                    completions.append(HookRejected(created.correlation_id, message))
                    event = _log.hook_conflict(event, message)  # noqa: PLW2901 (it replaces it)
            events.append(event)
        rest = self._buffer or _Batch()
        self._buffer = _Batch(
            events + rest.events,
            completions + rest.completions,
            batch.inbox + rest.inbox,
            batch.durable or rest.durable,
            batch.tasks + rest.tasks,
            batch.queues_task or rest.queues_task,
            rest.terminal or batch.terminal,
        )

    def _cancel_instead(self, refused: _Batch) -> None:
        """The store refused ``refused``: the run's cancel is stored. Cancel the run.

        Nothing the batch carried reaches the workflow (it waits where it was, and sees
        CancelledError there), a terminal event in it or in the buffer is dropped, and
        its other events are logged again ahead of the cancellation, so the log keeps
        the result of a step that finished meanwhile.
        """
        rest = self._buffer or _Batch()
        kept = [e for e in (*refused.events, *rest.events) if e.type not in _TERMINAL]
        self._buffer = _Batch(
            kept,
            [],  # nothing of it is delivered: the workflow is cancelled where it waits
            refused.inbox + rest.inbox,
            refused.durable or rest.durable,
            refused.tasks + rest.tasks,
            refused.queues_task or rest.queues_task,
        )
        if self.instance is not None and not self.instance.finished:
            self._process(self.instance.cancel(self.host.clock.now()))
        else:  # it returned or failed meanwhile (that end was refused), or never began
            self._end(self._cancelled())

    # -- commands from the workflow -------------------------------------------------

    def _process(self, commands: list[Command]) -> None:  # noqa: C901, PLR0912 (one branch per command)
        for command in commands:
            match command:
                case ScheduleStep() if self.host.draining or self._cancel_pending:
                    # Shutting down: the step is not started nor logged; the worker that
                    # takes the run over replays to this point and starts it. Or a run
                    # whose cancel is stored is being brought back: `begin` cancels it.
                    continue
                case ScheduleStep() if command.spec.queue is not None:
                    # Routed to the queue's workers, even if this one serves the queue:
                    # the store queues a task with this event, and the run awaits it.
                    self._await_remote(command)
                    self._emit(
                        _log.step_started(
                            command.correlation_id,
                            name=command.spec.name,
                            attempt=1,
                            input=command.input,
                            queue=command.spec.queue,
                        ),
                        queues_task=True,
                    )
                case ScheduleStep():
                    # A step that finishes at once joins its step_started in the
                    # flusher's next batch (one append per step): on Python 3.12 its
                    # task runs eagerly, inside `_start_step`, so step_started goes
                    # first; before 3.12 the task is started first, so that it runs
                    # before the flusher this step_started starts.
                    started = _log.step_started(
                        command.correlation_id,
                        name=command.spec.name,
                        attempt=1,
                        input=command.input,
                    )
                    if EAGER_TASKS:
                        self._emit(started)
                        self._start_step(command, 1, None, logged=True)
                    else:
                        self._start_step(command, 1, None, logged=True)
                        self._emit(started)
                case StartChild():
                    # Known even unlogged: a cancel reaches it (made before a crash).
                    self._child_started(
                        command.correlation_id, command.run_id, detached=command.detached
                    )
                    if self.host.draining or self._cancel_pending:
                        continue  # as a step: the next holder starts it, or it is cancelled
                    self._emit(
                        _log.child_started(
                            command.correlation_id,
                            workflow=command.spec.name,
                            run_id=command.run_id,
                            input=command.input,
                            detached=command.detached,
                        ),
                        child=command,
                    )
                case StartTimer():
                    self._emit(_log.sleep_started(command.correlation_id, wake_at=command.wake_at))
                    self._arm_timer(command.correlation_id, command.wake_at)
                case CancelTimer():
                    timer = self._timers.pop(command.correlation_id, None)
                    if timer is not None:
                        timer.cancel()
                    self._emit(_log.sleep_completed(command.correlation_id, cancelled=True))
                case CreateHook():
                    # A webhook's command carries what its requests are answered with,
                    # a hook's the JSON Schema every resume checks its payload against.
                    self._emit(
                        _log.hook_created(
                            command.correlation_id,
                            token=command.token,
                            name=command.name,
                            kind=command.kind,
                            respond_with=command.respond_with,
                            body=command.body,
                            schema=command.schema,
                        )
                    )
                case DisposeHook():
                    self._emit(_log.hook_disposed(command.correlation_id, token=command.token))
                case MarkPatch():
                    self._emit(_log.patch_marked(command.correlation_id, patch=command.patch_id))
                case SetAttributes():
                    self._emit(_log.attributes_set(command.correlation_id, values=command.values))
                case WriteStream():
                    self._write_stream(command)
                case CompleteRun():
                    self._end(_log.run_completed(output=command.output))
                case FailRun():
                    self._end(_log.run_failed(error=command.error))
                case BlockRun():
                    self._block(f"{command.reason}\n{self._versions()}")
                case CancelRun():
                    self._end(self._cancelled())

    def _write_stream(self, command: WriteStream) -> None:
        """Log a chunk of the workflow body (``stream_written``): the store adds it.

        A step started in the same activation stores its chunks after this one
        (`perdure._streams.body_writing`), so the stream keeps the order the run wrote
        in. A replay does not log a chunk its log holds.
        """
        if not self._streaming:
            self._streaming = True
            body_writing(self.run_id)
        self._emit(
            _log.stream_written(
                command.correlation_id,
                stream=command.stream,
                value=command.value,
                close=command.close,
            )
        )

    def _streamed(self) -> None:
        """An append went through: the body's chunks it held are stored."""
        pending = self._buffer
        if pending is None or all(e.type is not EventType.STREAM_WRITTEN for e in pending.events):
            self._streaming = False
            body_stored(self.run_id)

    def _end(self, event: NewEvent) -> None:
        self.finished = True
        if event.type is EventType.RUN_CANCELLED and not self._ended:
            # The steps running now see CancelledError (`_stop_work`); their attempts
            # are logged as cancelled. A plain def step's thread cannot be stopped.
            for cid, (name, attempt) in (self._attempts or {}).items():
                self._emit(_log.step_cancelled(cid, name=name, attempt=attempt))
        self._stop_work()
        self._emit(event, durable=True)
        self._ended = True

    def _cancelled(self) -> NewEvent:
        """The run's ``run_cancelled``, with the reason when not cancelled by a caller."""
        return _log.run_cancelled(reason=self._cancel_reason)

    def _stop_work(self) -> None:
        """Cancel the run's running steps and its timers: it ends, blocks or is let go."""
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        for task in self._steps.values():
            task.cancel()
        self._steps.clear()
        self._attempts = None
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    # -- steps ----------------------------------------------------------------------

    def _start_step(
        self,
        command: ScheduleStep,
        attempt: int,
        not_before: datetime | None,
        *,
        logged: bool = False,
    ) -> None:
        # Noted before the task starts: on Python 3.12 it may run to its end inside
        # `new_task`, and its end forgets the attempt and the task.
        self._attempt_is(command, attempt)
        task = new_task(
            self._run_step(command, attempt, not_before, logged=logged),
            f"step {command.correlation_id} of run {self.run_id}",
        )
        if task.done():  # ran to its end at once (an eager task)
            return
        if self._steps is _NO_STEPS:
            self._steps = {}
        self._steps[command.correlation_id] = task

    async def _run_step(
        self, command: ScheduleStep, attempt: int, not_before: datetime | None, *, logged: bool
    ) -> None:
        # Forgotten from inside rather than by a done callback: one loop turn less per
        # step. A task cancelled before it ever ran skips this; `_end` and `_abandon`,
        # which cancel them, clear `_steps` themselves.
        try:
            workflow = WorkflowMetadata(self.run_id, self.spec.name, self.started_at)
            await self.host.attempts.run(
                self,
                command,
                command.spec,
                command.correlation_id,
                command.input,
                attempt,
                not_before,
                workflow,
                reported=logged,
            )
        finally:
            self._steps.pop(command.correlation_id, None)
            self._forget_attempt(command.correlation_id)
            self._settled()

    def _forget_attempt(self, cid: str) -> None:
        # None again once empty: a sleeping run holds no dict for it (test_memory.py).
        attempts = self._attempts
        if attempts is not None:
            attempts.pop(cid, None)
            if not attempts:
                self._attempts = None

    def _attempt_is(self, command: ScheduleStep, attempt: int) -> None:
        if self._attempts is None:
            self._attempts = {}
        self._attempts[command.correlation_id] = (command.spec.name, attempt)

    # -- the attempts' outcomes (AttemptOutcomes), written to the log ---------------

    def attempt_started(self, call: ScheduleStep, attempt: int) -> None:
        """Log the attempt's ``step_started``."""
        self._emit(
            _log.step_started(
                call.correlation_id, name=call.spec.name, attempt=attempt, input=call.input
            )
        )

    def attempt_span(
        self, call: ScheduleStep, step: StepMetadata
    ) -> AbstractContextManager[object]:
        """A span in the run's span."""
        return self._span.step(call.spec.name, step.step_id, step.attempt)

    def backing_off(self, call: ScheduleStep, *, waiting: bool) -> None:  # noqa: ARG002
        """Count the step among those waiting out a retry's delay, or no more."""
        if waiting:
            self._backing_off += 1
            self.host.maybe_idle()
        else:
            self._backing_off -= 1

    def retrying(
        self, call: ScheduleStep, attempt: int, error: Exception, retry_at: datetime
    ) -> None:
        """Log ``step_retrying``."""
        self._attempt_is(call, attempt + 1)
        self._emit(
            _log.step_retrying(
                call.correlation_id,
                name=call.spec.name,
                attempt=attempt,
                error=error_record(error),
                retry_at=retry_at,
            )
        )

    def succeeded(self, call: ScheduleStep, attempt: int, output: JSON) -> None:
        """Log ``step_completed``; the workflow gets the output once it is stored."""
        cid = call.correlation_id
        self._emit(
            _log.step_completed(cid, name=call.spec.name, attempt=attempt, output=output),
            completion=StepDone(cid, output),
        )

    def failed(self, call: ScheduleStep, attempt: int, error: BaseException) -> None:
        """Log ``step_failed``; the workflow gets the error once it is stored."""
        cid, record = call.correlation_id, error_record(error)
        self._emit(
            _log.step_failed(cid, name=call.spec.name, attempt=attempt, error=record),
            completion=StepFailed(cid, record, attempt),
        )

    def lost(self, call: ScheduleStep, attempt: int, max_retries: int) -> Exception:
        """The error of an attempt whose process died, when none is left."""
        return RuntimeError(
            f"the process running attempt {attempt} of step {call.correlation_id} died, "
            f"and the step has no attempts left (max_retries={max_retries})"
        )

    @property
    def started_at(self) -> datetime:
        """When the run started (its ``run_started`` time)."""
        return self.instance.started_at if self.instance else self.host.clock.now()

    # -- timers and hooks -----------------------------------------------------------

    def _arm_timer(self, cid: str, wake_at: datetime) -> None:
        # The function and its arguments rather than a bound method: one object less
        # for each sleeping run.
        handle = self.host.clock.call_at(wake_at, RunActor._timer_fired, self, cid)
        self._timers[cid] = handle

    def _timer_fired(self, cid: str) -> None:
        handle = self._timers.pop(cid, None)
        if handle is None or self.gone or self.finished:
            return
        if (metrics := recorder()) is not None:
            late = self.host.clock.now() - handle.when
            metrics.woke(self.spec.name, "timer", late.total_seconds())
        self._emit(
            _log.sleep_completed(cid, cancelled=False),
            completion=TimerFired(cid),
        )

    def receive(self, item: InboxItem) -> None:
        """Log and deliver a payload that `resume` stored for one of our hooks."""
        if not self.ready or self.finished or self.gone:
            return
        if self._inbox_seen is not None and item.id in self._inbox_seen:
            return
        if item.correlation_id.startswith(_CHILD_CALL):
            self._receive_child(item)
            return
        if self._inbox_seen is None:
            self._inbox_seen = set()
        self._inbox_seen.add(item.id)
        if (metrics := recorder()) is not None:
            late = self.host.clock.now() - item.created_at
            metrics.woke(self.spec.name, "hook", late.total_seconds())
        if item.malformed is not None:
            self._unreadable_payload(item, item.malformed)
            return
        if self.instance is not None and not self.instance.has_hook(item.correlation_id):
            # Read, but for no await: no hook of this run has that correlation id (a row
            # written by hand, or damaged). Logged, it would make a log no replay
            # matches; so the run is set aside, as for a row whose hook cannot be told.
            why = f"names no hook of run {self.run_id!r}: {item.correlation_id!r}"
            self._set_aside(RowFormatError("hook_inbox", item.id, {"correlation_id": why}))
            return
        self._emit(
            _log.hook_received(item.correlation_id, token=item.token, payload=item.payload),
            completion=HookPayload(item.correlation_id, item.payload),
            inbox_id=item.id,
        )

    def _unreadable_payload(self, item: InboxItem, problems: dict[str, str]) -> None:
        """Deliver an inbox item that cannot be read as an error at the hook's await.

        The workflow sees `perdure.HookPayloadError`, as for a payload that does not
        decode, and may catch it and wait for the next one; the error is logged in
        ``hook_received``, so a replay raises it again. An item whose hook cannot be
        told (its token or correlation id unreadable), or whose correlation id is no
        hook of the run (`receive`), is for no await: its run is set aside instead,
        blocked. Either way, only this run is touched.
        """
        problem = RowFormatError("hook_inbox", item.id, problems)
        if "token" in problems or "correlation_id" in problems:
            self._set_aside(problem)
            return
        logger.warning("run %s: %s; its hook's await raises HookPayloadError", self.run_id, problem)
        cid, error = item.correlation_id, str(problem)
        self._emit(
            _log.hook_received(cid, token=item.token, payload=None, error=error),
            completion=HookPayload(cid, None, error),
            inbox_id=item.id,
        )

    def _await_remote(self, command: ScheduleStep) -> None:
        if self._remote is None:
            self._remote = {}
        self._remote[command.correlation_id] = command
        self._attempt_is(command, 1)  # the attempt its step_started logged
        self.host.awaits_remote(self)

    @property
    def awaiting_remote(self) -> bool:
        """Whether a queue's worker runs a step for this run (its outcome is not logged)."""
        return bool(self._remote) and self.ready and not self.finished and not self.gone

    def receive_result(self, task: StepTask) -> None:
        """Log and deliver the outcome of a step a queue's worker ran for this run.

        The failed attempts are logged as ``step_retrying`` and the outcome as
        ``step_completed`` or ``step_failed``, and the task is deleted in that append.
        """
        if (
            not self.ready
            or self.finished
            or self.gone
            or task.outcome is None
            or (self._tasks_seen is not None and task.id in self._tasks_seen)
        ):
            return
        if self._tasks_seen is None:
            self._tasks_seen = set()
        self._tasks_seen.add(task.id)
        command = None if self._remote is None else self._remote.pop(task.correlation_id, None)
        self._forget_attempt(task.correlation_id)
        made = None if command is None else outcome_events(task, command.spec.name)
        if made is None:  # the workflow awaits no such step: the log cannot take it
            logger.warning(
                "run %s has a result for step %s it does not await; ignoring it",
                self.run_id,
                task.correlation_id,
            )
            return
        events, completion = made
        for event in events[:-1]:
            self._emit(event)
        self._emit(events[-1], completion=completion, task_id=task.id)

    # -- cancellation, eviction, the end --------------------------------------------

    def _arm_deadline(self, record: RunRecord) -> None:
        """Cancel the run at its deadline (`perdure._deadlines`): at once if it passed.

        Armed at every claim, from the stored deadline, so a restart or another worker
        keeps it; a run handed back is due no later than it (`_evict_if_idle`).
        """
        if record.deadline_at is None:
            return
        reason = deadline_reason(record.created_at, record.deadline_at)
        if record.deadline_at <= self.host.clock.now():
            self._deadline_passed(reason)
            return
        self._deadline = self.host.clock.call_at(
            record.deadline_at, RunActor._deadline_passed, self, reason
        )

    def _deadline_passed(self, reason: str) -> None:
        self._deadline = None
        if self.gone or self.finished:
            return
        if self._cancel_reason is None:
            self._cancel_reason = reason
        logger.info("run %s: %s; cancelling it", self.run_id, reason)
        self.cancel()

    def cancel(self) -> None:
        """Deliver a cancel request: CancelledError in the workflow, then the run ends."""
        if not self.ready:
            self._cancel_pending = True
            return
        if self.finished or self.gone or self.instance is None:
            return
        self._process(self.instance.cancel(self.host.clock.now()))

    @property
    def writing(self) -> asyncio.Task[None] | None:
        """The task writing the run's log, while it has something on its way."""
        flusher = self._flusher
        return None if flusher is None or flusher.done() else flusher

    @property
    def running_steps(self) -> int:
        """How many of the run's steps run here (or wait out a retry's delay)."""
        return len(self._steps)

    @property
    def suspended(self) -> bool:
        """Waiting only on timers, hooks and queues' workers: nothing runs or is written."""
        return (
            self.ready
            and not self.finished
            and not self.gone
            and not self._steps
            and self._buffer is None
            and (self._flusher is None or self._flusher.done())
        )

    @property
    def sleeping(self) -> bool:
        """Whether a timer is armed: a suspended run without one waits on hooks or queues."""
        return bool(self._timers)

    @property
    def drained(self) -> bool:
        """No step runs and nothing waits to be written: safe to hand back."""
        return (
            self.gone
            or self.finished
            or (
                self._buffer is None
                and (self._flusher is None or self._flusher.done())
                and len(self._steps) <= self._backing_off
            )
        )

    @property
    def busy(self) -> bool:
        """Doing something now, rather than waiting on the clock or the outside world.

        The fake clock's autojump moves time only when no held run is busy.
        """
        if self.gone:
            return False
        return (
            not self.ready
            or self._buffer is not None
            or (self._flusher is not None and not self._flusher.done())
            or len(self._steps) > self._backing_off
        )

    def _settled(self) -> None:
        self.host.maybe_idle()
        if self._flusher is not None and self._flusher.done():
            self._flusher = None  # a done task keeps its coroutine: a kilobyte per run
        if not self._steps:
            self._steps = _NO_STEPS
        if self.suspended and self._inbox_read and self._evict_timer is None:
            when = self.host.clock.now() + self.host.evict_after
            if any(timer.when <= when for timer in self._timers.values()) or (
                self._deadline is not None and self._deadline.when <= when
            ):
                # A timer wakes the run first, and it settles again after that: no
                # eviction timer to hold meanwhile.
                return
            self._evict_timer = self.host.clock.call_at(when, self._evict_if_idle)

    def inbox_read(self) -> None:
        """The worker has handed us what our inbox held once we were ready: may evict now."""
        if not self._inbox_read:
            self._inbox_read = True
            self._settled()

    def _cancel_evict(self) -> None:
        if self._evict_timer is not None:
            self._evict_timer.cancel()
            self._evict_timer = None

    def _evict_if_idle(self) -> None:
        self._evict_timer = None
        if not self.suspended:
            return
        wake_at = min((timer.when for timer in self._timers.values()), default=FAR_FUTURE)
        if self._deadline is not None:  # due by its deadline, whoever holds it then
            wake_at = min(wake_at, self._deadline.when)
        self.host.evict(self, wake_at)

    def drop(self) -> None:
        """Forget the run in this process (evicted or lost); the store keeps it."""
        self._abandon()

    def _abandon(self) -> None:
        if self.gone:
            return
        self.gone = True
        if self._streaming:  # its steps wait for no body chunk of this life any more
            self._streaming = False
            body_stored(self.run_id)
        self._cancel_evict()
        self._stop_work()
        if self.instance is not None:
            self.instance.discard()
        self._span.end(outcome="released")  # no-op when the run ended here
        self.host.forget(self)

    def _finish(self, terminal: NewEvent) -> None:
        self.finished = True
        outcome = terminal.type.value.removeprefix("run_")
        error = _log.RunFailed.of(terminal).error if terminal.type is EventType.RUN_FAILED else None
        self._span.end(outcome=outcome, error=error)
        if (metrics := recorder()) is not None:
            instance, now = self.instance, self.host.clock.now()
            ran = None if instance is None else (now - instance.started_at).total_seconds()
            metrics.run_ended(self.spec.name, outcome, ran)
        self._abandon()
        self.host.run_finished(self.run_id, terminal)
        if self._parent is not None or self.spec.concurrency is not None:
            # The store told the parent in the append that ended this run (an inbox
            # item); its holder may be this worker, and a store hides its own writes.
            # Or the end freed a place of the workflow's limit, for a run waiting in the
            # store that a pass may now claim.
            self.host.poke()


_TERMINAL = (EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED)


def _children_in_flight(events: list[Event]) -> dict[str, tuple[str, bool]]:
    """The child runs a log shows started and not ended: call id -> (run id, detached)."""
    found: dict[str, tuple[str, bool]] = {}
    for event in events:
        if event.type is EventType.CHILD_STARTED:
            started = _log.ChildStarted.of(event)
            found[started.correlation_id] = (started.run_id, started.detached)
        elif event.type is EventType.CHILD_COMPLETED and event.correlation_id is not None:
            found.pop(event.correlation_id, None)
    return found


_CHILD_CALL = "child."
"""The correlation ids of child runs begin so: an inbox item under one is a child's end."""
