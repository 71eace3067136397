"""`MemoryStore`: the reference `Store`, in plain dicts, for tests and for reading.

Everything happens on the event loop between two awaits, so each method is atomic
without a lock. Every value a caller hands in goes through a JSON round trip, as it
would through a database column: a test that passes on this store does not rely on
Python objects a real store could not keep, and later mutation by the caller cannot
reach the stored copy.

A single process cannot lose a worker without losing the store with it, so every
registered worker is live and `reap_dead_workers` has nothing to reap.

Change notification (`wait_for_change`) reports the writes others act on: new runs,
resumes, cancels, releases, ended runs, and queued and finished step tasks.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import socket
from collections.abc import Collection, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING

from perdure._attributes import attribute_text
from perdure._log import RunBlocked, run_cancelled, run_created, run_unblocked
from perdure._process import WorkerProcess, this_process
from perdure._records import (
    JSON,
    Event,
    EventType,
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
from perdure._stats import MAX_SAMPLED_RUNS, RunStats, StatsWindow, build_stats
from perdure.stores._common import (
    cancel_requested,
    child_end,
    earliest,
    hook_conflict,
    hook_not_found,
    lease_lost,
    same_hook,
    task_lost,
    utc,
)
from perdure.stores._index import (
    AttributesChanged,
    Change,
    HookAdded,
    HookRemoved,
    RunEnded,
    RunStarted,
    StepChanged,
    StreamChunkAdded,
    TimerCleared,
    TimerSet,
    ends_cancelled,
    plan,
)
from perdure.stores._memory_flow import MemoryFlow
from perdure.stores._memory_schedules import MemorySchedules
from perdure.stores._memory_streams import MemoryStreams
from perdure.stores._protocol import Store

if TYPE_CHECKING:
    from datetime import datetime

    from perdure._schedules import ScheduleRecord

__all__ = ["MemoryStore"]


def _json(value: JSON) -> JSON:
    """A deep copy made of JSON types only; raises TypeError for anything else."""
    return json.loads(json.dumps(value))


def _has_attributes(run: RunRecord, wanted: Mapping[str, str] | None) -> bool:
    """Whether the run has every attribute of ``wanted`` (key -> search text)."""
    if not wanted:
        return True
    have = run.attributes or {}
    return all(key in have and attribute_text(have[key]) == text for key, text in wanted.items())


class MemoryStore(MemorySchedules, MemoryStreams, MemoryFlow, Store):
    """An in-memory `Store`: the reference implementation and the one to test with."""

    def __init__(self) -> None:
        self._runs: dict[str, RunRecord] = {}
        self._cancel_requested_at: dict[str, datetime] = {}
        self._events: dict[str, list[Event]] = {}
        self._steps: dict[str, dict[str, StepRecord]] = {}
        self._timers: dict[str, dict[str, datetime]] = {}
        self._hooks: dict[str, HookRecord] = {}
        self._inbox: dict[int, InboxItem] = {}
        self._inbox_ids = itertools.count(1)
        self._parent_calls: dict[str, str] = {}
        """A child run's correlation id in its parent's log, until the child ends."""
        self._tasks: dict[int, StepTask] = {}
        self._task_ids = itertools.count(1)
        self._schedules: dict[str, ScheduleRecord] = {}
        self._streams = {}
        self._workers: dict[str, WorkerRecord] = {}
        # Change notification: a counter of writes, the value the last wait returned
        # on, and the futures of waiters (futures rather than an asyncio.Event so the
        # store is not tied to the first event loop that waits on it).
        self._version = 0
        self._seen_version = 0
        self._waiters: list[asyncio.Future[None]] = []

    # -- life cycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Nothing to create."""

    async def close(self) -> None:
        """Nothing to release; the data stays readable."""

    # -- workers ------------------------------------------------------------------

    @property
    def lease(self) -> None:
        """No lease: one process cannot lose a worker without losing the store too."""

    async def register_worker(
        self, worker_id: str, now: datetime, *, workflows: Mapping[str, str] | None = None
    ) -> None:
        """Remember the worker; in one process it lives as long as the store."""
        now = utc(now)
        old = self._workers.get(worker_id)
        if workflows is not None:
            defined = dict(workflows)
        else:
            defined = old.workflows if old is not None else {}
        started = old.started_at if old is not None else now
        self._workers[worker_id] = WorkerRecord(
            worker_id, socket.gethostname(), os.getpid(), started, now, defined
        )

    async def live_workers(self, now: datetime) -> list[WorkerRecord]:  # noqa: ARG002
        """Every registered worker: in one process, none can have died without the store."""
        return sorted(self._workers.values(), key=lambda worker: (worker.started_at, worker.id))

    async def reap_dead_workers(self, worker_id: str, now: datetime) -> int:  # noqa: ARG002
        """Reap nothing: a worker sharing this process cannot have died without it."""
        return 0

    async def host_workers(self, host: str) -> list[WorkerProcess]:
        """The workers registered on ``host``: all of them this process's, with its tag."""
        tag = this_process()[2]
        return [
            WorkerProcess(worker.id, worker.host, worker.pid, tag)
            for worker in self._workers.values()
            if worker.host == host
        ]

    async def reap_gone_workers(
        self,
        worker_id: str,  # noqa: ARG002
        gone: Collection[WorkerProcess],  # noqa: ARG002
        now: datetime,  # noqa: ARG002
    ) -> int:
        """Reap nothing: every worker shares this process, which is plainly not gone."""
        return 0

    async def heartbeat(self, worker_id: str, now: datetime) -> bool:
        """Record the heartbeat's time (there are no leases to renew); whether registered."""
        registered = worker_id in self._workers
        await self.register_worker(worker_id, now)
        return registered

    async def unregister_worker(self, worker_id: str, now: datetime) -> None:
        """Forget the worker, release its runs (claimable at once), requeue its tasks."""
        now = utc(now)
        self._workers.pop(worker_id, None)
        held = [run for run in self._runs.values() if run.owner == worker_id]
        for run in held:
            due = min(now, run.created_at)  # due since created: see `Store.unregister_worker`
            held_run = replace(run, owner=None, wake_at=due, updated_at=now, recoveries=0)
            self._runs[run.id] = held_run
        claimed = [
            task
            for task in self._tasks.values()
            if task.status == "claimed" and task.owner == worker_id
        ]
        for task in claimed:
            self._tasks[task.id] = replace(
                task, status="queued", owner=None, attempt=task.attempt + 1, updated_at=now
            )
        if held or claimed:
            self._changed()

    # -- runs ---------------------------------------------------------------------

    async def create_run(
        self, run: NewRun, now: datetime, *, claim_for: str | None = None
    ) -> tuple[RunRecord, bool]:
        """Create a pending run with its ``run_created`` event, unless the id exists.

        With ``claim_for``, held by that worker from the start (the eager start).
        """
        now = utc(now)
        if (existing := self._runs.get(run.id)) is not None:
            return existing, False
        run_input = _json(run.input)
        record = RunRecord(
            id=run.id,
            workflow=run.workflow,
            status=RunStatus.PENDING,
            input=run_input,
            output=None,
            error=None,
            version=run.version,
            created_at=now,
            updated_at=now,
            started_at=None,
            completed_at=None,
            owner=claim_for,
            wake_at=now if claim_for is None else None,
            cancel_requested=False,
            deadline_at=None if run.deadline is None else utc(run.deadline),
            attributes=_json(run.attributes) or None,
            parent_id=run.parent_id,
            root_id=None if run.parent_id is None else run.root_id or run.parent_id,
        )
        created = run_created(
            workflow=run.workflow,
            input=run_input,
            version=run.version,
            attributes=record.attributes,
            deadline=record.deadline_at,
            parent_id=record.parent_id,
            root_id=record.root_id,
            parent_call=run.parent_call,
        )
        if run.parent_id is not None and run.parent_call is not None:
            self._parent_calls[run.id] = run.parent_call
        self._runs[run.id] = record
        self._events[run.id] = [Event(run.id, 1, created.type, None, created.data, now)]
        if claim_for is None:  # a run its creator's worker holds is no other worker's news
            self._changed()
        return record, True

    async def fork_run(
        self, run: NewRun, forked_from: str, events: list[NewEvent], now: datetime
    ) -> tuple[RunRecord, bool]:
        """Create a pending run whose log goes on with ``events``; idempotent on id."""
        if (existing := self._runs.get(run.id)) is not None:
            return existing, False
        events = [replace(event, data=_json(event.data)) for event in events]
        changes = plan(events, run.id)
        if any(isinstance(change, RunEnded) for change in changes):
            raise ValueError(f"a fork's log cannot hold the end of a run ({run.id!r})")
        self._check_hooks(run.id, changes)
        record, _ = await self.create_run(run, now)
        record = replace(record, forked_from=forked_from)
        first = self._events[run.id][0]
        created = run_created(
            workflow=run.workflow,
            input=record.input,
            version=run.version,
            forked_from=forked_from,
            attributes=record.attributes,
            deadline=record.deadline_at,
        )
        self._events[run.id][0] = replace(first, data=created.data)
        record = self._log(record, events, changes, utc(now))
        return record, True

    async def claim_runs(
        self,
        worker_id: str,
        now: datetime,
        limit: int,
        *,
        workflows: Collection[str] | None = None,
    ) -> list[RunRecord]:
        """Hold up to ``limit`` due, unheld runs (of ``workflows``), oldest ``wake_at`` first."""
        now = utc(now)
        # Highest priority first, then oldest; runs whose limit is full are left out.
        due = self._flow_claimable(
            run
            for run in self._runs.values()
            if run.owner is None
            and run.wake_at is not None
            and run.wake_at <= now
            and (workflows is None or run.workflow in workflows)
        )
        claimed = [
            replace(run, owner=worker_id, wake_at=None, updated_at=now)
            for run in due[: max(limit, 0)]
        ]
        for run in claimed:
            self._runs[run.id] = run
        return claimed

    async def append(
        self,
        worker_id: str,
        run_id: str,
        events: list[NewEvent],
        now: datetime,
        *,
        durable: bool = False,  # noqa: ARG002 - memory is as durable as it gets
        consume_inbox: list[int] | None = None,
        consume_tasks: list[int] | None = None,
    ) -> int:
        """Append to a held run's log and update the indexes; everything or nothing."""
        now = utc(now)
        run = self._held(worker_id, run_id)
        events = [replace(event, data=_json(event.data)) for event in events]
        changes = plan(events, run_id)
        if run.cancel_requested and not ends_cancelled(changes):
            raise cancel_requested(run_id)
        self._check_hooks(run_id, changes)
        # Nothing below raises: the write is all-or-nothing.
        run = self._log(run, events, changes, now)
        for item_id in consume_inbox or ():
            item = self._inbox.get(item_id)
            if item is not None and item.run_id == run_id:
                del self._inbox[item_id]
        for task_id in consume_tasks or ():
            task = self._tasks.get(task_id)
            if task is not None and task.run_id == run_id:
                del self._tasks[task_id]
        # Others may wait for the result, or serve the queue; a step is nobody's news.
        queued = any(isinstance(change, StepChanged) and change.queue for change in changes)
        if run.status.is_terminal or queued:
            self._changed()
        return len(self._events[run_id])

    async def release_run(self, worker_id: str, run_id: str, wake_at: datetime) -> None:
        """Stop holding the run; it is due at ``wake_at``, or at once if something waits."""
        run = self._held(worker_id, run_id)
        first_item = min(
            (item.created_at for item in self._inbox.values() if item.run_id == run_id),
            default=None,
        )
        first_result = min(
            (
                task.updated_at
                for task in self._tasks.values()
                if task.run_id == run_id and task.status == "finished"
            ),
            default=None,
        )
        due = earliest(
            utc(wake_at), first_item, first_result, self._cancel_requested_at.get(run_id)
        )
        self._runs[run_id] = replace(run, owner=None, wake_at=due, recoveries=0)
        self._changed()

    async def request_cancel(self, run_id: str, now: datetime) -> RunRecord | None:
        """Cancel a pending unheld run now; flag any other unended run for its worker."""
        now = utc(now)
        run = self._runs.get(run_id)
        if run is None or run.status.is_terminal:
            return run
        self._cancel_requested_at.setdefault(run_id, now)
        run = replace(run, cancel_requested=True, updated_at=now)
        if run.owner is None and run.status is RunStatus.PENDING:
            cancelled = [run_cancelled()]
            run = self._log(run, cancelled, plan(cancelled, run_id), now)
        elif run.owner is None:
            run = replace(run, wake_at=earliest(run.wake_at, now))
        self._runs[run_id] = run
        self._changed()
        return run

    async def block_run(self, worker_id: str, run_id: str, event: NewEvent, now: datetime) -> None:
        """Log ``run_blocked`` and set the held run aside: blocked, unheld, not due."""
        now = utc(now)
        run = self._held(worker_id, run_id)
        reason = RunBlocked.of(event, run_id=run_id).reason
        log = self._events[run_id]
        log.append(Event(run_id, len(log) + 1, event.type, None, event.data, now))
        due = now if run_id in self._cancel_requested_at else None
        self._runs[run_id] = replace(
            run, status=RunStatus.BLOCKED, blocked_reason=reason, owner=None, wake_at=due,
            updated_at=now,
        )  # fmt: skip
        self._changed()

    async def unblock_run(self, run_id: str, now: datetime, *, by: str | None) -> RunRecord | None:
        """Make a blocked run due again with ``run_unblocked``; any other run is left be."""
        now = utc(now)
        run = self._runs.get(run_id)
        if run is None or run.status is not RunStatus.BLOCKED:
            return run
        event = run_unblocked(by=by)
        log = self._events[run_id]
        log.append(Event(run_id, len(log) + 1, event.type, None, event.data, now))
        run = replace(
            run, status=RunStatus.RUNNING, blocked_reason=None, updated_at=now, recoveries=0,
            wake_at=now if run.owner is None else run.wake_at,
        )  # fmt: skip
        self._runs[run_id] = run
        self._changed()
        return run

    async def get_run(self, run_id: str) -> RunRecord | None:
        """The run's record, or None."""
        return self._runs.get(run_id)

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
        """Runs matching the filters, newest first (by created_at, then id)."""
        runs = [
            run
            for run in self._runs.values()
            if (status is None or run.status == status)
            and (workflow is None or run.workflow == workflow)
            and (parent_id is None or run.parent_id == parent_id)
            and (before is None or (run.created_at, run.id) < (utc(before[0]), before[1]))
            and _has_attributes(run, attributes)
        ]
        runs.sort(key=lambda run: (run.created_at, run.id), reverse=True)
        return runs[: max(limit, 0)]

    async def stats(self, window: StatsWindow, *, workflow: str | None = None) -> RunStats:
        """Aggregates of the runs over ``window``: a scan here, an index in a database."""
        since, until = window.since, window.until
        runs = [run for run in self._runs.values() if workflow is None or run.workflow == workflow]
        ended = [
            run
            for run in runs
            if run.completed_at is not None and since <= run.completed_at < until
        ]
        ended.sort(key=lambda run: (run.completed_at, run.id), reverse=True)
        sampled = ended[:MAX_SAMPLED_RUNS]
        return build_stats(
            window,
            workflow,
            started=[
                (window.index(run.created_at), 1) for run in runs if since <= run.created_at < until
            ],
            ended=[
                (window.index(run.completed_at), run.workflow, run.status.value, 1)
                for run in ended
                if run.completed_at is not None
            ],
            steps=[
                (s.name, s.status, s.attempt, (s.updated_at - s.started_at).total_seconds())
                for run in sampled
                for s in self._steps.get(run.id, {}).values()
                if s.status in {"completed", "failed"}
            ],
            backlog=[
                (run.workflow, run.status.value, 1)
                for run in runs
                if run.status in {RunStatus.PENDING, RunStatus.BLOCKED}
            ],
            sampled_runs=len(sampled),
        )

    async def events(self, run_id: str, *, after_seq: int = 0) -> list[Event]:
        """The run's log after ``after_seq`` (seq n sits at index n - 1)."""
        return self._events.get(run_id, [])[max(after_seq, 0) :]

    async def steps(self, run_id: str) -> list[StepRecord]:
        """The run's step rows in the order their first event was logged."""
        return list(self._steps.get(run_id, {}).values())

    async def timers(self, run_id: str) -> dict[str, datetime]:
        """The run's pending timers, correlation id to wake time, soonest first.

        Not part of `Store`: the timers table is an index nobody claims by, but a
        run's detail shows what it sleeps on.
        """
        return dict(sorted(self._timers.get(run_id, {}).items(), key=lambda item: item[1]))

    async def next_wake_at(self, *, workflows: Collection[str] | None = None) -> datetime | None:
        """The earliest ``wake_at`` of an unheld run (ended and held runs have none)."""
        return min(
            (
                run.wake_at
                for run in self._runs.values()
                if run.wake_at is not None
                and (workflows is None or run.workflow in workflows)
                and self._flow_room(run, {})  # a run waiting on a full limit: its holder's end
            ),
            default=None,
        )

    async def cancel_requests(self, worker_id: str) -> list[str]:
        """Ids of the runs ``worker_id`` holds that have a cancel request."""
        return sorted(
            run.id for run in self._runs.values() if run.owner == worker_id and run.cancel_requested
        )

    # -- hooks --------------------------------------------------------------------

    async def resume_hook(
        self,
        token: str,
        payload: JSON,
        now: datetime,
        *,
        name: str | None = None,
        created_by: tuple[str, str] | None = None,
    ) -> HookRecord:
        """Put the payload in the inbox of the hook's run and wake the run if unheld."""
        now = utc(now)
        hook = self._hooks.get(token)
        if hook is None or not same_hook(hook, created_by):
            raise hook_not_found(token)
        if name is not None and hook.name != name:
            raise hook_not_found(token, name=name, actual=hook.name)
        item_id = next(self._inbox_ids)
        self._inbox[item_id] = InboxItem(
            item_id, hook.run_id, token, hook.correlation_id, _json(payload), now
        )
        run = self._runs[hook.run_id]
        if run.owner is None:
            self._runs[run.id] = replace(run, wake_at=earliest(run.wake_at, now), updated_at=now)
        self._changed()
        return hook

    async def get_hook(self, token: str) -> HookRecord | None:
        """The live hook holding ``token``, or None."""
        return self._hooks.get(token)

    async def hook_event(self, token: str) -> Event | None:
        """The ``hook_created`` event of the live hook holding ``token``, or None.

        A resume reads the hook's payload schema there, the HTTP app a webhook's response.
        """
        hook = self._hooks.get(token)
        if hook is None:
            return None
        return next(
            (
                event
                for event in reversed(self._events.get(hook.run_id, []))
                if event.correlation_id == hook.correlation_id
                and event.type is EventType.HOOK_CREATED
            ),
            None,
        )

    async def list_hooks(self, *, run_id: str | None = None) -> list[HookRecord]:
        """Live hooks, oldest first (ties in creation order)."""
        hooks = [hook for hook in self._hooks.values() if run_id in (None, hook.run_id)]
        return sorted(hooks, key=lambda hook: hook.created_at)

    async def inbox(self, worker_id: str) -> list[InboxItem]:
        """Undelivered payloads of the runs ``worker_id`` holds, oldest first."""
        return [item for item in self._inbox.values() if self._runs[item.run_id].owner == worker_id]

    # -- step tasks ---------------------------------------------------------------

    async def claim_step_tasks(
        self,
        worker_id: str,
        queues: Collection[str],
        now: datetime,
        limit: int,
        *,
        names: Collection[str] | None = None,
    ) -> list[StepTask]:
        """Claim up to ``limit`` queued tasks of ``queues`` (and ``names``), oldest first."""
        now = utc(now)
        queued = [
            task
            for task in self._tasks.values()
            if task.status == "queued"
            and task.queue in queues
            and (names is None or task.name in names)
        ]
        queued.sort(key=lambda task: task.id)
        claimed = [
            replace(task, status="claimed", owner=worker_id, updated_at=now)
            for task in queued[: max(limit, 0)]
        ]
        for task in claimed:
            self._tasks[task.id] = task
        return claimed

    async def finish_step_task(
        self, worker_id: str, task_id: int, outcome: StepOutcome, now: datetime
    ) -> None:
        """Store the outcome of a task ``worker_id`` claimed; wake its run if unheld."""
        now = utc(now)
        task = self._tasks.get(task_id)
        if task is None or task.status != "claimed" or task.owner != worker_id:
            raise task_lost(
                worker_id,
                task_id,
                None if task is None else task.owner,
                None if task is None else task.status,
            )
        stored = StepOutcome(
            attempt=outcome.attempt,
            output=_json(outcome.output),
            error=_json(outcome.error),
            retries=tuple(_json(list(outcome.retries))),
        )
        self._tasks[task_id] = replace(
            task, status="finished", attempt=outcome.attempt, updated_at=now, outcome=stored
        )
        run = self._runs[task.run_id]
        if run.owner is None and run.wake_at is not None:
            self._runs[run.id] = replace(run, wake_at=earliest(run.wake_at, now), updated_at=now)
        self._changed()

    async def step_results(self, worker_id: str) -> list[StepTask]:
        """Finished tasks of the runs ``worker_id`` holds, in the order they finished."""
        finished = [
            task
            for task in self._tasks.values()
            if task.status == "finished" and self._runs[task.run_id].owner == worker_id
        ]
        return sorted(finished, key=lambda task: (task.updated_at, task.id))

    async def step_tasks(self, run_id: str) -> list[StepTask]:
        """The run's step tasks, oldest first."""
        return sorted(
            (task for task in self._tasks.values() if task.run_id == run_id),
            key=lambda task: task.id,
        )

    # -- change notification ------------------------------------------------------

    async def wait_for_change(self, timeout: float) -> bool:
        """Wait for a write since the last call returned, or ``timeout`` seconds."""
        if self._version == self._seen_version:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                # Not asyncio.wait_for: on Python 3.11 it swallows a cancel that arrives
                # as the waiter completes, and an Engine's exit then waits forever.
                async with asyncio.timeout(timeout):
                    await waiter
            except TimeoutError:
                return False
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self._seen_version = self._version
        return True

    # -- helpers ------------------------------------------------------------------

    def _changed(self) -> None:
        self._version += 1
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    def _held(self, worker_id: str, run_id: str) -> RunRecord:
        """The run, if ``worker_id`` holds it; the fence of every worker write."""
        run = self._runs.get(run_id)
        if run is None or run.owner != worker_id:
            owner = None if run is None else run.owner
            raise lease_lost(worker_id, run_id, owner, exists=run is not None)
        return run

    def _check_hooks(self, run_id: str, changes: list[Change | None]) -> None:
        """Raise HookConflictError if a hook the changes add has a live token.

        Follows the changes in order, so that disposing a hook and creating one with
        the same token in one append is allowed, as it is on the database stores.
        """
        added: set[str] = set()
        removed: set[str] = set()
        for change in changes:
            if isinstance(change, HookRemoved):
                hook = self._hooks.get(change.token)
                if change.token in added or (hook is not None and hook.run_id == run_id):
                    added.discard(change.token)
                    removed.add(change.token)
            elif isinstance(change, HookAdded):
                if change.token in added:
                    raise hook_conflict(change.token, run_id)
                hook = self._hooks.get(change.token)
                if hook is not None and change.token not in removed:
                    raise hook_conflict(change.token, hook.run_id)
                added.add(change.token)

    def _log(
        self, run: RunRecord, events: list[NewEvent], changes: list[Change | None], now: datetime
    ) -> RunRecord:
        """Append checked events and apply their changes; return the run as it now stands."""
        log = self._events[run.id]
        for event, change in zip(events, changes, strict=True):
            log.append(
                Event(run.id, len(log) + 1, event.type, event.correlation_id, event.data, now)
            )
            if change is not None:
                run = self._apply(run, change, now)
        run = replace(run, updated_at=now)
        self._runs[run.id] = run
        return run

    def _apply(self, run: RunRecord, change: Change, now: datetime) -> RunRecord:
        match change:
            case RunStarted():
                return replace(run, status=RunStatus.RUNNING, started_at=run.started_at or now)
            case StepChanged():
                self._apply_step(run.id, change, now)
                if change.queue is not None:
                    self._queue_task(run.id, change, now)
            case TimerSet():
                self._timers.setdefault(run.id, {})[change.correlation_id] = change.wake_at
            case TimerCleared():
                self._timers.get(run.id, {}).pop(change.correlation_id, None)
            case HookAdded():
                self._hooks[change.token] = HookRecord(
                    change.token, run.id, change.correlation_id, change.name, change.kind, now
                )
            case HookRemoved():
                hook = self._hooks.get(change.token)
                if hook is not None and hook.run_id == run.id:
                    del self._hooks[change.token]
            case RunEnded():
                return self._end(run, change, now)
            case AttributesChanged():
                return replace(run, attributes={**(run.attributes or {}), **change.values})
            case StreamChunkAdded():
                self._add_body_chunk(run.id, change, now)
        return run

    def _end(self, run: RunRecord, change: RunEnded, now: datetime) -> RunRecord:
        """The run's final state; nothing of it waits any more."""
        self._timers.pop(run.id, None)
        for hook in [hook for hook in self._hooks.values() if hook.run_id == run.id]:
            del self._hooks[hook.token]
        for item in [item for item in self._inbox.values() if item.run_id == run.id]:
            del self._inbox[item.id]
        for task in [task for task in self._tasks.values() if task.run_id == run.id]:
            del self._tasks[task.id]
        self._tell_parent(run, change, now)
        return replace(
            run,
            status=change.status,
            output=change.output,
            error=change.error,
            completed_at=now,
            owner=None,
            wake_at=None,
        )

    def _tell_parent(self, run: RunRecord, change: RunEnded, now: datetime) -> None:
        """A child ended: its end goes into its parent's inbox, and wakes the parent.

        In the same transaction as the child's end (here: between two awaits), so no
        crash can lose it; the parent's holder logs it as ``child_completed``.
        """
        cid = self._parent_calls.pop(run.id, None)
        parent = None if run.parent_id is None else self._runs.get(run.parent_id)
        if cid is None or parent is None or parent.status.is_terminal:
            return
        item_id = next(self._inbox_ids)
        payload = child_end(change.status, change.output, change.error)
        self._inbox[item_id] = InboxItem(item_id, parent.id, run.id, cid, _json(payload), now)
        if parent.owner is None and parent.wake_at is not None:
            self._runs[parent.id] = replace(
                parent, wake_at=earliest(parent.wake_at, now), updated_at=now
            )
        self._changed()

    def _apply_step(self, run_id: str, change: StepChanged, now: datetime) -> None:
        steps = self._steps.setdefault(run_id, {})
        old = steps.get(change.correlation_id)
        steps[change.correlation_id] = StepRecord(
            run_id=run_id,
            correlation_id=change.correlation_id,
            name=change.name if old is None else old.name,
            status=change.status,
            attempt=change.attempt,
            input=change.input if old is None or old.input is None else old.input,
            output=change.output,
            error=change.error,
            started_at=now if old is None else old.started_at,
            updated_at=now,
        )

    def _queue_task(self, run_id: str, change: StepChanged, now: datetime) -> None:
        """A queued task for a step routed to ``change.queue``, replacing any of that step."""
        for task in [
            task
            for task in self._tasks.values()
            if task.run_id == run_id and task.correlation_id == change.correlation_id
        ]:
            del self._tasks[task.id]
        assert change.queue is not None  # noqa: S101 - checked by the caller
        task_id = next(self._task_ids)
        self._tasks[task_id] = StepTask(
            id=task_id,
            run_id=run_id,
            correlation_id=change.correlation_id,
            queue=change.queue,
            name=change.name,
            input=change.input,
            attempt=change.attempt,
            status="queued",
            owner=None,
            created_at=now,
            updated_at=now,
        )
