"""Bring a run back into memory from its log, checking the code still matches it.

Replay runs the workflow through the same activations as its first life: it starts it
at the time of ``run_started`` and delivers each logged outcome, in log order, at the
time it was logged. Every durable call the workflow makes is checked against the
calls the log recorded (``step_started`` for a first attempt, ``sleep_started``,
``hook_created``), one by one and in order; a mismatch is a `NonDeterminismError`.
Calls beyond the end of the log are new and are handed back to run live.

Replay happens only after a crash, a restart or an eviction, never per step.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from perdure._errors import NonDeterminismError
from perdure._records import Event, EventType
from perdure._replay._instance import (
    WEBHOOK,
    Completion,
    HookPayload,
    HookRejected,
    StepDone,
    StepFailed,
    TimerFired,
    WorkflowInstance,
)
from perdure._replay._specs import (
    SCHEDULING,
    CancelTimer,
    Command,
    CreateHook,
    DisposeHook,
    ScheduleStep,
    StartTimer,
)

__all__ = ["InFlightStep", "ReplayResult", "replay"]


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


@dataclass(slots=True)
class ReplayResult:
    """What the worker must take over once the log is used up."""

    steps: list[InFlightStep] = field(default_factory=list)
    timers: dict[str, datetime] = field(default_factory=dict)
    """Timers started and not completed: correlation id -> original wake time."""
    commands: list[Command] = field(default_factory=list)
    """Commands the workflow made past the end of the log, to carry out live."""
    last_seq: int = 0


def _completion(event: Event) -> Completion | None:
    cid = event.correlation_id or ""
    data = event.data
    match event.type:
        case EventType.STEP_COMPLETED:
            return StepDone(cid, data.get("output"))
        case EventType.STEP_FAILED:
            return StepFailed(cid, data.get("error") or {}, int(data.get("attempt", 0)))
        case EventType.SLEEP_COMPLETED if not data.get("cancelled"):
            return TimerFired(cid)
        case EventType.HOOK_RECEIVED:
            return HookPayload(cid, data.get("payload"))
        case EventType.HOOK_CREATED if data.get("error"):
            return HookRejected(cid, str(data["error"]))
    return None


def _is_scheduling(event: Event) -> bool:
    if event.type is EventType.STEP_STARTED:
        return int(event.data.get("attempt", 1)) == 1
    return event.type in (EventType.SLEEP_STARTED, EventType.HOOK_CREATED)


def _describe_command(command: Command) -> str:
    match command:
        case ScheduleStep():
            return f"step {command.spec.name!r} ({command.correlation_id})"
        case StartTimer():
            return f"a sleep ({command.correlation_id})"
        case CreateHook():
            return f"hook {command.name!r} with token {command.token!r} ({command.correlation_id})"
    return type(command).__name__  # pragma: no cover (only scheduling commands are described)


def _describe_event(event: Event) -> str:
    cid = event.correlation_id
    match event.type:
        case EventType.STEP_STARTED:
            return f"step {event.data.get('name')!r} ({cid}, event #{event.seq})"
        case EventType.SLEEP_STARTED:
            return f"a sleep ({cid}, event #{event.seq})"
        case _:
            return (
                f"hook {event.data.get('name')!r} with token {event.data.get('token')!r} "
                f"({cid}, event #{event.seq})"
            )


def _matches(command: Command, event: Event) -> bool:
    if command.correlation_id != event.correlation_id:  # type: ignore[union-attr]
        return False
    match command:
        case ScheduleStep():
            return event.type is EventType.STEP_STARTED
        case StartTimer():
            return event.type is EventType.SLEEP_STARTED
        case CreateHook():
            return event.type is EventType.HOOK_CREATED and _same_hook(command, event.data)
    return False  # pragma: no cover


def _same_hook(command: CreateHook, data: dict[str, Any]) -> bool:
    if command.kind == WEBHOOK:  # its token is random: the replay took it from this event
        return data.get("kind") == WEBHOOK and data.get("name") == command.name
    return data.get("token") == command.token


class _Replay:
    def __init__(self, instance: WorkflowInstance, events: list[Event]) -> None:
        self.instance = instance
        self.events = events
        self.expected: deque[Event] = deque(e for e in events if _is_scheduling(e))
        self.position = 0
        self.scheduled: dict[str, ScheduleStep] = {}
        self.timers: dict[str, datetime] = {}
        self.closed: set[str] = {
            e.correlation_id
            for e in events
            if e.correlation_id
            and (
                e.type in (EventType.HOOK_DISPOSED, EventType.SLEEP_COMPLETED)
                or (e.type is EventType.HOOK_CREATED and e.data.get("error"))
            )
        }
        self.result = ReplayResult(last_seq=events[-1].seq if events else 0)
        instance.use_logged_tokens(
            {
                e.correlation_id: str(e.data["token"])
                for e in events
                if e.type is EventType.HOOK_CREATED
                and e.correlation_id
                and e.data.get("kind") == WEBHOOK
                and "token" in e.data
            }
        )

    def fail(self, detail: str) -> NonDeterminismError:
        spec = self.instance.spec
        return NonDeterminismError(
            f"run {self.instance.run_id} of workflow {spec.name!r} no longer matches its log: "
            f"{detail}. The workflow's code changed while the run was in flight, or it "
            "depends on something other than its inputs and durable calls (use "
            "perdure.now(), perdure.random() and perdure.uuid4() in workflows)."
        )

    def check(self, commands: list[Command]) -> None:
        for command in commands:
            if isinstance(command, SCHEDULING):
                self.position += 1
                if self.expected:
                    logged = self.expected.popleft()
                    if not _matches(command, logged):
                        raise self.fail(
                            f"durable call #{self.position} is {_describe_command(command)}, "
                            f"but the log holds {_describe_event(logged)} there"
                        )
                    # Logged, so in flight until the log says otherwise. (A call past
                    # the end of the log is new: it goes to `commands`, never here, or
                    # it would be started twice.)
                    if isinstance(command, ScheduleStep):
                        self.scheduled[command.correlation_id] = command
                    elif isinstance(command, StartTimer):  # the logged wake time rules
                        self.timers[command.correlation_id] = datetime.fromisoformat(
                            str(logged.data["wake_at"])
                        )
                    continue
            elif (
                isinstance(command, CancelTimer | DisposeHook)
                and command.correlation_id in self.closed
            ):
                continue
            self.result.commands.append(command)

    def run(self) -> ReplayResult:
        started = next((e for e in self.events if e.type is EventType.RUN_STARTED), None)
        if started is None:
            raise ValueError(f"run {self.instance.run_id} has no run_started event to replay")
        self.check(self.instance.start(started.created_at))
        step_events: dict[str, list[Event]] = {}
        for event in self.events:
            if event.type in (EventType.STEP_STARTED, EventType.STEP_RETRYING):
                step_events.setdefault(event.correlation_id or "", []).append(event)
            completion = _completion(event)
            if completion is None:
                continue
            cid = completion.correlation_id
            self.scheduled.pop(cid, None)
            self.timers.pop(cid, None)
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
                f"the log holds {_describe_event(self.expected[0])} as durable call "
                f"#{self.position + 1}, which the workflow did not make"
            )
        for cid, wake_at in self.timers.items():
            if cid not in self.closed:
                self.result.timers[cid] = wake_at
        for cid, command in self.scheduled.items():
            self.result.steps.append(_in_flight(command, step_events.get(cid, [])))
        return self.result


def _in_flight(command: ScheduleStep, events: list[Event]) -> InFlightStep:
    attempt = 0
    not_before: datetime | None = None
    queue = next(
        (
            str(event.data["queue"])
            for event in events
            if event.type is EventType.STEP_STARTED and event.data.get("queue")
        ),
        None,
    )
    for event in events:
        attempt = max(attempt, int(event.data.get("attempt", 1)))
        if event.type is EventType.STEP_RETRYING:
            not_before = datetime.fromisoformat(str(event.data["retry_at"]))
        else:
            not_before = None
    # An attempt that was started and never finished counts: a step that kills its
    # process every time must not crash-loop forever.
    return InFlightStep(
        command, next_attempt=attempt + 1 if attempt else 1, not_before=not_before, queue=queue
    )


def replay(instance: WorkflowInstance, events: list[Event]) -> ReplayResult:
    """Replay ``events`` into a fresh ``instance``; see the module docstring.

    Raises:
        NonDeterminismError: the workflow's calls do not match the log.
    """
    return _Replay(instance, events).run()
