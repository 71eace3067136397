"""Bring a run back into memory from its log, checking the code still matches it.

Replay runs the workflow through the same activations as its first life: it starts it
at the time of ``run_started`` and delivers each logged outcome, in log order, at the
time it was logged. Every durable call the workflow makes is checked against the
calls the log recorded (``step_started`` for a first attempt, ``sleep_started``,
``hook_created``, ``child_started``), one by one and in order; a mismatch is a
`NonDeterminismError`.
Calls beyond the end of the log are new and are handed back to run live.

Attributes (``attributes_set``) and the body's stream writes (``stream_written``) are
not matched in order either: a call whose correlation id the log holds is not logged
again, and one it lacks is logged.

Patch markers (``patch_marked``) are not matched in order: the instance is told up
front which patches the log marked and how many calls it holds, which is all
`perdure.patched` needs to answer as the run's first life did; a marker the code no
longer asks about (a deprecated patch) is skipped, and one already logged is not
logged again.

Replay happens only after a crash, a restart or an eviction, never per step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeGuard

from perdure import _log
from perdure._errors import NonDeterminismError
from perdure._records import Event
from perdure._replay._commands import (
    SCHEDULING,
    CancelTimer,
    ChildDone,
    Command,
    Completion,
    CreateHook,
    DisposeHook,
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
    WriteStream,
)
from perdure._replay._instance import WEBHOOK, WorkflowInstance

__all__ = ["InFlightChild", "InFlightStep", "ReplayResult", "replay"]


@dataclass(frozen=True, slots=True)
class InFlightStep:
    """A step the log shows started but not finished: it must run again.

    Unless it has a ``queue``: then a queue's worker runs it (its task waits in the
    store, queued or claimed) and the run only waits for the outcome.
    """

    command: ScheduleStep
    next_attempt: int
    not_before: datetime | None
    """The ``retry_at`` of its last logged failure, if it was waiting to retry."""
    queue: str | None = None
    """The queue its ``step_started`` named: the log decides, not today's code."""


@dataclass(frozen=True, slots=True)
class InFlightChild:
    """A child run the log shows started and not ended: the run waits for its end.

    The store tells the parent of that end (an inbox item), whoever holds it then.
    """

    command: StartChild


@dataclass(slots=True)
class ReplayResult:
    """What the worker must take over once the log is used up."""

    steps: list[InFlightStep] = field(default_factory=list)
    timers: dict[str, datetime] = field(default_factory=dict)
    """Timers started and not completed: correlation id -> original wake time."""
    commands: list[Command] = field(default_factory=list)
    """Commands the workflow made past the end of the log, to carry out live."""
    children: list[InFlightChild] = field(default_factory=list)
    """Child runs started and not ended, in the order they were started."""
    last_seq: int = 0


_Scheduling = _log.StepStarted | _log.SleepStarted | _log.HookCreated | _log.ChildStarted
"""The entries a durable call logs when it is made (a step's first attempt only)."""


@dataclass(frozen=True, slots=True)
class _Logged:
    """A scheduling entry of the log, with the event it was parsed from."""

    entry: _Scheduling
    seq: int


def _completion(entry: _log.LogEntry) -> Completion | None:  # noqa: PLR0911 (one per type)
    match entry:
        case _log.StepCompleted():
            return StepDone(entry.correlation_id, entry.output)
        case _log.StepFailed():
            return StepFailed(entry.correlation_id, entry.error, entry.attempt)
        case _log.SleepCompleted(cancelled=False):
            return TimerFired(entry.correlation_id)
        case _log.HookReceived():
            return HookPayload(entry.correlation_id, entry.payload, entry.error)
        case _log.HookCreated(error=str() as error) if error:
            return HookRejected(entry.correlation_id, error)
        case _log.ChildCompleted():
            return ChildDone(
                entry.correlation_id, entry.run_id, entry.status, entry.output, entry.error
            )
    return None


def _is_scheduling(entry: _log.LogEntry) -> TypeGuard[_Scheduling]:
    if isinstance(entry, _log.StepStarted):
        return entry.attempt == 1
    return isinstance(entry, _log.SleepStarted | _log.HookCreated | _log.ChildStarted)


def _closed(entry: _log.LogEntry) -> str | None:
    """The sleep or hook the entry ends for good, if any: its close is not redone."""
    match entry:
        case _log.HookDisposed() | _log.SleepCompleted():
            return entry.correlation_id
        case _log.HookCreated() if entry.error:
            return entry.correlation_id
    return None


def _describe_command(command: Command) -> str:
    match command:
        case ScheduleStep():
            return f"step {command.spec.name!r} ({command.correlation_id})"
        case StartTimer():
            return f"a sleep ({command.correlation_id})"
        case CreateHook():
            return f"hook {command.name!r} with token {command.token!r} ({command.correlation_id})"
        case StartChild():
            return f"child run of {command.spec.name!r} ({command.correlation_id})"
    return type(command).__name__  # pragma: no cover (only scheduling commands are described)


def _describe_logged(logged: _Logged) -> str:
    entry, cid = logged.entry, logged.entry.correlation_id
    match entry:
        case _log.StepStarted():
            return f"step {entry.name!r} ({cid}, event #{logged.seq})"
        case _log.SleepStarted():
            return f"a sleep ({cid}, event #{logged.seq})"
        case _log.ChildStarted():
            return f"child run of {entry.workflow!r} ({cid}, event #{logged.seq})"
    return f"hook {entry.name!r} with token {entry.token!r} ({cid}, event #{logged.seq})"


def _matches(command: Command, entry: _Scheduling) -> bool:
    if command.correlation_id != entry.correlation_id:  # type: ignore[union-attr]
        return False
    match command:
        case ScheduleStep():
            return isinstance(entry, _log.StepStarted)
        case StartTimer():
            return isinstance(entry, _log.SleepStarted)
        case CreateHook():
            return isinstance(entry, _log.HookCreated) and _same_hook(command, entry)
        case StartChild():
            # By workflow: the run id is the log's (`use_logged_children`), whatever the
            # code would name it now (a fork's derived ids differ from its original's).
            return isinstance(entry, _log.ChildStarted) and entry.workflow == command.spec.name
    return False  # pragma: no cover


def _same_hook(command: CreateHook, entry: _log.HookCreated) -> bool:
    if command.kind == WEBHOOK:  # its token is random: the replay took it from this event
        return entry.kind == WEBHOOK and entry.name == command.name
    return entry.token == command.token


class _Replay:
    def __init__(self, instance: WorkflowInstance, events: list[Event]) -> None:
        self.instance = instance
        self.events = events
        self.entries = [_log.parse(event) for event in events]
        self.expected: deque[_Logged] = deque(
            _Logged(entry, event.seq)
            for event, entry in zip(events, self.entries, strict=True)
            if _is_scheduling(entry)
        )
        self.position = 0
        self.scheduled: dict[str, ScheduleStep] = {}
        self.children: dict[str, StartChild] = {}
        self.timers: dict[str, datetime] = {}
        self.closed: set[str] = {cid for cid in map(_closed, self.entries) if cid is not None}
        self.result = ReplayResult(last_seq=events[-1].seq if events else 0)
        instance.use_logged_tokens(
            {
                entry.correlation_id: entry.token
                for entry in self.entries
                if isinstance(entry, _log.HookCreated) and entry.kind == WEBHOOK
            }
        )
        instance.use_logged_children(
            {
                entry.correlation_id: entry.run_id
                for entry in self.entries
                if isinstance(entry, _log.ChildStarted)
            }
        )
        self.patches = {e.patch for e in self.entries if isinstance(e, _log.PatchMarked)}
        self.attributes = {
            e.correlation_id for e in self.entries if isinstance(e, _log.AttributesSet)
        }
        self.streamed = {
            e.correlation_id for e in self.entries if isinstance(e, _log.StreamWritten)
        }
        instance.use_logged_patches(self.patches, len(self.expected))

    def fail(self, detail: str) -> NonDeterminismError:
        spec = self.instance.spec
        return NonDeterminismError(
            f"run {self.instance.run_id} of workflow {spec.name!r} no longer matches its log: "
            f"{detail}. The workflow's code changed while the run was in flight, or it "
            "depends on something other than its inputs and durable calls (use "
            "perdure.now(), perdure.random() and perdure.uuid4() in workflows)."
        )

    def logged_already(self, command: Command) -> bool:
        """Whether the log holds what this unmatched command would log."""
        if isinstance(command, CancelTimer | DisposeHook):
            return command.correlation_id in self.closed
        if isinstance(command, MarkPatch):
            return command.patch_id in self.patches
        if isinstance(command, SetAttributes):
            return command.correlation_id in self.attributes
        if isinstance(command, WriteStream):
            return command.correlation_id in self.streamed
        return False

    def check(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, SCHEDULING):
                self.position += 1
                if self.expected:
                    logged = self.expected.popleft()
                    if not _matches(command, logged.entry):
                        raise self.fail(
                            f"durable call #{self.position} is {_describe_command(command)}, "
                            f"but the log holds {_describe_logged(logged)} there"
                        )
                    # Logged, so in flight until the log says otherwise. (A call past
                    # the end of the log is new: it goes to `commands`, never here, or
                    # it would be started twice.)
                    if isinstance(command, ScheduleStep):
                        self.scheduled[command.correlation_id] = command
                    elif isinstance(command, StartChild):
                        self.children[command.correlation_id] = command
                    elif isinstance(logged.entry, _log.SleepStarted):  # the logged time rules
                        self.timers[command.correlation_id] = logged.entry.wake_at
                    continue
            elif self.logged_already(command):
                continue
            self.result.commands.append(command)

    def run(self) -> ReplayResult:
        started = next(
            (
                event
                for event, entry in zip(self.events, self.entries, strict=True)
                if isinstance(entry, _log.RunStarted)
            ),
            None,
        )
        if started is None:
            raise ValueError(f"run {self.instance.run_id} has no run_started event to replay")
        self.check(self.instance.start(started.created_at))
        step_entries: dict[str, list[_log.StepStarted | _log.StepRetrying]] = {}
        for event, entry in zip(self.events, self.entries, strict=True):
            if isinstance(entry, _log.StepStarted | _log.StepRetrying):
                step_entries.setdefault(entry.correlation_id, []).append(entry)
            completion = _completion(entry)
            if completion is None:
                continue
            cid = completion.correlation_id
            self.scheduled.pop(cid, None)
            self.timers.pop(cid, None)
            self.children.pop(cid, None)
            if self.instance.finished:
                break
            try:
                commands = self.instance.deliver(completion, event.created_at)
            except KeyError:
                raise self.fail(
                    f"the log holds {event.type.value} for {cid} (event #{event.seq}), "
                    "a call the workflow did not make"
                ) from None
            self.check(commands)
        if self.expected and not self.instance.finished:
            raise self.fail(
                f"the log holds {_describe_logged(self.expected[0])} as durable call "
                f"#{self.position + 1}, which the workflow did not make"
            )
        for cid, wake_at in self.timers.items():
            if cid not in self.closed:
                self.result.timers[cid] = wake_at
        for cid, command in self.scheduled.items():
            self.result.steps.append(_in_flight(command, step_entries.get(cid, [])))
        self.result.children.extend(InFlightChild(child) for child in self.children.values())
        return self.result


def _in_flight(
    command: ScheduleStep, entries: list[_log.StepStarted | _log.StepRetrying]
) -> InFlightStep:
    attempt = 0
    not_before: datetime | None = None
    queue = next((e.queue for e in entries if isinstance(e, _log.StepStarted) and e.queue), None)
    for entry in entries:
        attempt = max(attempt, entry.attempt)
        not_before = entry.retry_at if isinstance(entry, _log.StepRetrying) else None
    # An attempt that was started and never finished counts: a step that kills its
    # process every time must not crash-loop forever.
    return InFlightStep(
        command, next_attempt=attempt + 1 if attempt else 1, not_before=not_before, queue=queue
    )


def replay(instance: WorkflowInstance, events: list[Event]) -> ReplayResult:
    """Replay ``events`` into a fresh ``instance``; see the module docstring.

    Raises:
        NonDeterminismError: the workflow's calls do not match the log.
        perdure._log.LogFormatError: an event lacks a key, or has one of the wrong type.
    """
    return _Replay(instance, events).run()
