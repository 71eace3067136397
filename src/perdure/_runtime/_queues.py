"""Steps routed to queues: the queue side, and the events the run's holder logs.

A step marked ``@step(queue="gpu")`` never runs on the worker holding its run. The
holder logs ``step_started`` with ``"queue": "gpu"``, and the store queues a step task
in the same transaction. A worker serving that queue (``Engine(queues=("gpu",))``,
``perdure worker --queue gpu``) claims the task, runs every attempt the step's retry
policy allows, and stores the outcome in the task, which wakes the run
(`QueueRunner`). The holder then logs the outcome as if it had run the step itself: a
``step_retrying`` per failed attempt, then ``step_completed`` or ``step_failed``
(`outcome_events`), deleting the task in the same append.

The step is remote even when the holder serves the queue: that way a replay on any
worker treats it the same, and the log says where each step was meant to run.

A run cancelled (or ended) while a queue's worker runs one of its steps: that worker
cancels the attempt (`QueueRunner.drop_cancelled`, at each of its passes and at least
every second), so an async step sees `asyncio.CancelledError` at its next await, as it
would inline, and may clean up; nothing is stored for it (the task is gone with the
run, and the holder logged the attempt as ``step_cancelled``). A plain ``def`` step's
thread cannot be interrupted: it runs to its end, and its outcome is dropped.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from perdure import _log
from perdure._errors import LeaseLostError, RowFormatError
from perdure._records import JSON, NewEvent, StepOutcome, StepTask
from perdure._replay import StepDone, StepFailed, error_record
from perdure._runtime._outage import until_the_store_answers
from perdure._tracing import step_task_span
from perdure._workflow import WorkflowMetadata, lookup_step, queued_steps

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from perdure._replay import Completion
    from perdure._runtime._hosts import QueueHost
    from perdure._workflow import StepMetadata

__all__ = ["QueueRunner", "outcome_events", "validate_queues"]

logger = logging.getLogger("perdure.worker")

_CLAIM_BATCH = 100
_CANCEL_CHECK_EVERY = 0.1
"""Seconds between two looks of a worker's passes for cancelled runs of its step tasks."""


def validate_queues(queues: Collection[str]) -> frozenset[str]:
    """The queue names given to an Engine, checked.

    Raises:
        TypeError: a single string rather than a collection of names.
        ValueError: a name that is empty or not a string.
    """
    if isinstance(queues, str):
        raise TypeError(f"queues takes a collection of queue names, e.g. ({queues!r},)")
    names = frozenset(queues)
    for name in names:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"a queue name must be a non-empty string, got {name!r}")
    return names


def outcome_events(task: StepTask, name: str) -> tuple[list[NewEvent], Completion] | None:
    """What the holder logs for a finished step task, and what it delivers; None if unfinished.

    The events are those the holder would have logged running the step itself: one
    ``step_retrying`` per failed attempt, then ``step_completed`` or ``step_failed``.
    """
    outcome, cid = task.outcome, task.correlation_id
    if outcome is None:
        return None
    # What the task holds cannot be read: the step failed, saying so, and the workflow
    # sees that as any failure of the step (issue 11). Raised here, it failed the pass
    # of the worker holding the run, and so every run that worker holds.
    unreadable: Exception | None = None
    if task.malformed is not None:
        unreadable = RowFormatError("step_tasks", task.id, task.malformed)
    else:
        try:
            events = [_retrying(cid, name, retry) for retry in outcome.retries]
        except (TypeError, ValueError) as exc:
            unreadable = exc
    if unreadable is not None:
        outcome, events = StepOutcome(outcome.attempt, error=error_record(unreadable)), []
    completion: Completion
    if outcome.error is None:
        events.append(
            _log.step_completed(cid, name=name, attempt=outcome.attempt, output=outcome.output)
        )
        completion = StepDone(cid, outcome.output)
    else:
        events.append(
            _log.step_failed(cid, name=name, attempt=outcome.attempt, error=outcome.error)
        )
        completion = StepFailed(cid, outcome.error, outcome.attempt)
    return events, completion


def _retrying(cid: str, name: str, retry: dict[str, JSON]) -> NewEvent:
    """The ``step_retrying`` of a failed attempt kept in a step task (see `StepOutcome`)."""
    attempt, error, retry_at = retry.get("attempt"), retry.get("error"), retry.get("retry_at")
    if not isinstance(attempt, int) or not isinstance(error, dict) or not isinstance(retry_at, str):
        raise TypeError(f"step task of {cid}: a failed attempt is not as stored: {retry!r}")
    return _log.step_retrying(
        cid, name=name, attempt=attempt, error=error, retry_at=datetime.fromisoformat(retry_at)
    )


@dataclass(slots=True)
class _TaskRun:
    """A step task this worker runs, and the attempts of it that failed so far."""

    task: StepTask
    retries: list[dict[str, JSON]] = field(default_factory=list)
    root_id: str | None = None
    """The root of its run's tree, when the run is a child: its spans join that trace."""


class QueueRunner:
    """Claims the step tasks of a worker's queues and runs them. Owned by a `Worker`.

    Tasks run in the worker's step slots (``max_concurrent_steps``, shared with the
    steps of the runs it holds), and it claims no more tasks than it has slots, so a
    busy worker leaves the rest of the queue to the others. The attempts are run by
    the worker's `StepAttempts`, which reports them here (`AttemptOutcomes`): the
    outcome, and the failed attempts before it, go into the task.
    """

    def __init__(self, host: QueueHost, queues: frozenset[str], max_tasks: int) -> None:
        self.host = host
        self.queues = queues
        self._max_tasks = max_tasks
        self._running: dict[int, asyncio.Task[None]] = {}
        self._run_of: dict[int, str] = {}
        """The run of each task running here: `drop_cancelled` asks about it."""
        self._checked_at = float("-inf")
        self._backing_off: set[int] = set()

    # -- claiming ---------------------------------------------------------------------

    async def claim(self) -> bool:
        """Claim as many tasks as there are free slots and start them; whether more may wait."""
        room = self._max_tasks - len(self._running)
        # Every step with a queue this process has the code of: the queue a task is in
        # is the one its run logged, which today's code may name differently.
        names = queued_steps()
        if room <= 0 or not names:
            return False
        limit = min(room, _CLAIM_BATCH)
        host = self.host
        tasks = await host.store.claim_step_tasks(
            host.id, self.queues, host.clock.now(), limit, names=names
        )
        for task in tasks:
            if task.id in self._running:
                # Still running here: this worker was taken for dead (a stale heartbeat),
                # its task requeued, and it claimed it back. The runner carries on.
                continue
            runner = asyncio.get_running_loop().create_task(
                self._run(task), name=f"step task {task.id} ({task.correlation_id})"
            )
            self._running[task.id] = runner
            self._run_of[task.id] = task.run_id
            runner.add_done_callback(functools.partial(self._done, task.id))
        return len(tasks) == limit

    def _done(self, task_id: int, _: object) -> None:
        self._running.pop(task_id, None)
        self._run_of.pop(task_id, None)
        self.host.maybe_idle()
        self.host.poke()  # a slot is free: claim what waits

    # -- state, for the worker ----------------------------------------------------------

    @property
    def running(self) -> int:
        """Tasks claimed and not yet finished here."""
        return len(self._running)

    @property
    def busy(self) -> bool:
        """Whether a task runs now (rather than waiting out a retry's backoff)."""
        return len(self._running) > len(self._backing_off)

    @property
    def drained(self) -> bool:
        """No attempt runs now: tasks waiting to retry are handed back with the worker."""
        return not self.busy

    async def drop_cancelled(self, *, soon: bool = False) -> int:
        """Cancel the attempts of tasks whose run was cancelled or has ended; how many.

        One read per run with a task running here, and none while none runs. ``soon``
        (a worker's pass, which may come at every commit anyone makes): not again within
        `_CANCEL_CHECK_EVERY` seconds of the last look; the maintenance looks anyway.
        """
        loop = asyncio.get_running_loop()
        if not self._run_of or (soon and loop.time() < self._checked_at + _CANCEL_CHECK_EVERY):
            return 0
        self._checked_at = loop.time()
        store = self.host.store
        dropped = 0
        for run_id in set(self._run_of.values()):
            record = await store.get_run(run_id)
            if record is not None and not record.status.is_terminal and not record.cancel_requested:
                continue
            for task_id, owner_run in list(self._run_of.items()):
                runner = self._running.get(task_id)
                if owner_run == run_id and runner is not None and not runner.done():
                    logger.info("step task %s: its run %s was cancelled", task_id, run_id)
                    runner.cancel()
                    dropped += 1
        return dropped

    async def stop(self) -> None:
        """Abandon the tasks still running; unregistering the worker requeues them."""
        runners = list(self._running.values())
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, return_exceptions=True)

    # -- running ----------------------------------------------------------------------

    async def _run(self, task: StepTask) -> None:
        try:
            outcome = await self._attempts(task)
        except Exception as exc:  # perdure's own failure (the store, decoding): report it
            logger.exception("step task %s of run %s failed to run", task.id, task.run_id)
            outcome = StepOutcome(task.attempt, error=error_record(exc))
        await self._finish(task, outcome)

    async def _attempts(self, task: StepTask) -> StepOutcome:
        if task.malformed is not None:  # its input, say, cannot be read: no attempt
            unreadable = RowFormatError("step_tasks", task.id, task.malformed)
            logger.error("step task %s of run %s fails: %s", task.id, task.run_id, unreadable)
            return StepOutcome(task.attempt, error=error_record(unreadable))
        spec = lookup_step(task.name)
        if spec is None:  # claims ask only for known steps: the code changed since
            missing = RuntimeError(
                f"step {task.name!r} (queue {task.queue!r}) is not defined on worker "
                f"{self.host.id!r}"
            )
            return StepOutcome(task.attempt, error=error_record(missing))
        host = self.host
        run = await host.store.get_run(task.run_id)
        workflow = WorkflowMetadata(
            task.run_id,
            run.workflow if run is not None else "",
            (run.started_at or run.created_at) if run is not None else task.created_at,
        )
        return await host.attempts.run(
            self,
            _TaskRun(task, root_id=run.root_id if run is not None else None),
            spec,
            task.correlation_id,
            task.input,
            task.attempt,
            None,
            workflow,
        )

    # -- the attempts' outcomes (AttemptOutcomes), kept in the task --------------------

    def attempt_started(self, call: _TaskRun, attempt: int) -> None:
        """Nothing to report: the holder logged the step's start when it queued the task."""

    def attempt_span(self, call: _TaskRun, step: StepMetadata) -> AbstractContextManager[object]:
        """A span in the run's trace, naming the queue."""
        task = call.task
        return step_task_span(
            task.run_id, step.name, step.step_id, step.attempt, task.queue, root_id=call.root_id
        )

    def backing_off(self, call: _TaskRun, *, waiting: bool) -> None:
        """Count the task among those waiting out a retry's delay, or no more."""
        if waiting:
            self._backing_off.add(call.task.id)
            self.host.maybe_idle()
        else:
            self._backing_off.discard(call.task.id)

    def retrying(self, call: _TaskRun, attempt: int, error: Exception, retry_at: datetime) -> None:
        """Keep the failed attempt: the holder logs it as ``step_retrying``."""
        call.retries.append(
            {"attempt": attempt, "error": error_record(error), "retry_at": retry_at.isoformat()}
        )

    def succeeded(self, call: _TaskRun, attempt: int, output: JSON) -> StepOutcome:
        """The outcome to store: the output, and the attempts that failed before."""
        return StepOutcome(attempt, output=output, retries=tuple(call.retries))

    def failed(self, call: _TaskRun, attempt: int, error: BaseException) -> StepOutcome:
        """The outcome to store: the last error, and the attempts that failed before."""
        return StepOutcome(attempt, error=error_record(error), retries=tuple(call.retries))

    def lost(self, call: _TaskRun, attempt: int, max_retries: int) -> Exception:
        """The error of an attempt whose worker died or left, when none is left."""
        task = call.task
        return RuntimeError(
            f"the worker running attempt {attempt} of step {task.correlation_id} (queue "
            f"{task.queue!r}) died or left, and the step has no attempts left "
            f"(max_retries={max_retries})"
        )

    async def _finish(self, task: StepTask, outcome: StepOutcome) -> None:
        # Retried until the store answers: a task finished here but not stored would stay
        # claimed by this live worker, and its run would wait for ever.
        host = self.host
        try:
            await until_the_store_answers(
                lambda: host.store.finish_step_task(host.id, task.id, outcome, host.clock.now()),
                f"could not store the outcome of step task {task.id}",
            )
        except LeaseLostError as exc:
            logger.info("the outcome of step %s is dropped: %s", task.correlation_id, exc)
            return
        # The run's holder may be this very worker, and a store does not report its own
        # writes to itself.
        host.poke()
