"""The shape of every event in a run's log: one constructor and one parser per type.

A run's log outlives the code that wrote it: a run started today may be replayed by a
release made next year. So the shape of each event's ``data`` is written down once,
here, and every writer builds events with the constructors below (``step_started(cid,
name=..., attempt=..., input=...)``) and every reader reads them with the parsers
(``StepStarted.of(event)``, or `parse` for a reader that walks a whole log), never with
``data["..."]`` by hand. The constructors build the dict directly, because the worker
builds two events per step on its hot path; the parsers check every key they read and
raise `LogFormatError` naming the run, the event and the key when one is missing or of
the wrong type.

The events and their data (all JSON; a ``cid`` is the event's correlation id, the
durable call's name and counter such as ``fetch#2``; run events have none)::

    run_created      workflow: str, input: the encoded call ({"args": [...], "kwargs":
                     {...}}), version: str | null; forked_from: str, the id of the run
                     whose log this one's begins with (`Engine.fork`; absent: not a fork);
                     attributes: {key: str | int | float | bool}, the run's attributes
                     from its start (absent: none); deadline: ISO 8601, when the run is
                     cancelled if it has not ended (``timeout=``; absent: never);
                     parent_id, root_id: str, a child run's parent and the top of its
                     tree, and parent_call: str, its correlation id in the parent's log
                     (all absent: not a child)
    run_started      worker: str (the worker that started it; absent reads as unknown)
    step_started     cid; name: str, attempt: int (1-based), input: the encoded call,
                     and queue: str for a step routed to the workers serving that queue
                     (the store then queues a `StepTask` for it; absent: run inline)
    step_retrying    cid; name, attempt (the one that failed), error, retry_at: ISO 8601
    step_completed   cid; name, attempt, output: the encoded value
    step_failed      cid; name, attempt, error
    sleep_started    cid; wake_at: ISO 8601 with an offset (read without one: UTC)
    sleep_completed  cid; cancelled: bool (absent: false, the timer fired)
    hook_created     cid; token: str, name: str, kind: "hook" or "webhook" (absent:
                     "hook"); a webhook also has respond_with: int and body: JSON (what
                     the HTTP app answers each request with); error: str when the token
                     was already held (then no hook is live, and the workflow sees it);
                     schema: the JSON Schema (an object) every payload must pass before
                     it is stored, from any process (absent: payloads are checked only
                     where the hook's type is defined, as before schemas were stored)
    hook_received    cid; token: str, payload: the encoded value; error: str when the
                     payload stored for the hook could not be read back (then payload
                     is null, and the workflow's await raises HookPayloadError with it)
    hook_disposed    cid; token: str
    run_completed    output: the encoded value
    run_failed       error
    run_cancelled    reason: str, why, when not by a caller (absent: cancelled by a
                     caller); a deadline's says "deadline of 1h passed"
    run_blocked      reason: str (what diverged, or the workflow's traceback), version:
                     str | null (the code version of the worker that blocked it), worker:
                     str | null; written by the store's `block_run`, not by an append.
                     Not terminal: the run waits for a worker whose code differs, or
                     `Engine.unblock`
    run_unblocked    by: str | null (the worker or the caller that tried it again);
                     written by the store's `unblock_run`
    patch_marked     cid (``patch.ID#1``); patch: str, the id given to `perdure.patched`:
                     the run took the patch's new branch. A replay reads every marker
                     of the log before it starts, not in order, and a marker the code
                     no longer asks about (a deprecated or removed patch) is skipped
    child_started    cid (``child.WORKFLOW#n``); workflow: str, run_id: str (the child's),
                     input: the encoded call, detached: bool (absent: false). The parent
                     logs it once the child run exists (created just before, with the
                     same id: a replay or a crash never makes a second one)
    child_completed  cid; run_id: str, status: "completed", "failed" or "cancelled",
                     output: the encoded value (completed), error (failed); moved by
                     the parent's worker from its inbox, where the store put it in the
                     transaction that ended the child
    step_cancelled   cid; name: str, attempt: int: the attempt running when the run was
                     cancelled; logged just before ``run_cancelled``
    attributes_set   cid (``attributes#n``, counted apart from durable calls); values:
                     {key: str | int | float | bool}, set by `perdure.set_attributes`
                     (later values of a key replace earlier ones). A replay does not log
                     again a call its log holds, and matches them by cid, not in order
    stream_written   cid (``stream:NAME#n``, the body's n-th write to stream NAME,
                     counted apart from durable calls); stream: str, value: the encoded
                     chunk, close: bool (absent: false; true: the writer closed the
                     stream, and value is null). The store adds the chunk to the stream
                     in the transaction that logs it; a replay does not log again a
                     write its log holds (matched by cid, not in order)

An ``error`` is ``{"type": "module.QualName", "message": str, "traceback": str}``.
A key holding an encoded value (``input``, ``output``, ``payload``, ``body``) may be
absent, and then reads as JSON null.

**The compatibility rule.** Logs written by this release must replay on every later
one, and a run in flight survives an upgrade only if the new code reads its log as the
old code meant it. So a later version

- MAY add a new optional key to an event type, with a default that means what the log
  meant without it (like ``queue`` on ``step_started``: absent means run inline);
  parsers ignore keys they do not know, so older code reading a newer log is unharmed
  by such keys;
- MAY add a new event type; code that does not know it refuses it with a clear
  `LogFormatError` rather than skipping it, because a skipped event can change what
  a replay decides;
- MUST NEVER rename a key or an event type, change a key's type or meaning, make an
  optional key required, remove an event type, or change the order or the meaning of
  the events in a log (which event a durable call logs first, what ends a run) or how
  correlation ids are formed (``name#counter``, counted per name, assigned when the
  call is made): logs already written would then mean something else.

The golden histories in ``tests/golden/`` are logs recorded by earlier releases; their
test replays each one against today's code, and a file there is never rewritten to
make that test pass.

To add an event type: a member of `EventType`; here, its constructor, its parsed class
(with ``read``) in `CONSTRUCTORS`, `LogEntry` and ``_ENTRY_TYPES``, and its line above;
an example in ``tests/test_log.py`` (a test fails until there is one); and a golden
scenario that logs it, recorded with ``tests/golden/record.py --new NAME``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Self

from perdure._errors import PerdureError
from perdure._records import JSON, Event, EventType, NewEvent

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "CONSTRUCTORS",
    "PARSERS",
    "AnyEvent",
    "AttributesSet",
    "ChildCompleted",
    "ChildStarted",
    "ErrorRecord",
    "HookCreated",
    "HookDisposed",
    "HookReceived",
    "LogEntry",
    "LogFormatError",
    "PatchMarked",
    "RunBlocked",
    "RunCancelled",
    "RunCompleted",
    "RunCreated",
    "RunFailed",
    "RunStarted",
    "RunUnblocked",
    "SleepCompleted",
    "SleepStarted",
    "StepCancelled",
    "StepCompleted",
    "StepFailed",
    "StepRetrying",
    "StepStarted",
    "StreamWritten",
    "attributes_set",
    "child_completed",
    "child_started",
    "event_type",
    "hook_conflict",
    "hook_created",
    "hook_disposed",
    "hook_received",
    "parse",
    "patch_marked",
    "run_blocked",
    "run_cancelled",
    "run_completed",
    "run_created",
    "run_failed",
    "run_started",
    "run_unblocked",
    "sleep_completed",
    "sleep_started",
    "step_cancelled",
    "step_completed",
    "step_failed",
    "step_retrying",
    "step_started",
    "stream_written",
]

ErrorRecord = dict[str, JSON]
"""``{"type": "module.QualName", "message": str, "traceback": str}``."""

AnyEvent = Event | NewEvent


class LogFormatError(PerdureError, ValueError):
    """An event in a run's log does not have the shape its type promises.

    A log perdure wrote never raises this: it means a log written by hand or by a newer
    release (an event type this one does not know), or a damaged one. The message names
    the run (when known), the event's sequence number and type, and the key.

    Attributes:
        run_id: the run, when known (an event not yet appended has none).
        seq: the event's position in the log, when it has one.
        event_type: the event's type, as logged.
        key: the key at fault, or None when the event as a whole is (an unknown type).
    """

    def __init__(
        self,
        message: str,
        *,
        run_id: str | None,
        seq: int | None,
        event_type: str,
        key: str | None,
    ) -> None:
        super().__init__(message)
        self.run_id = run_id
        self.seq = seq
        self.event_type = event_type
        self.key = key


# -- constructors: what writers call -------------------------------------------------
#
# Plain functions that build the data dict at once (no intermediate object): the worker
# calls step_started and step_completed for every step.


def run_created(
    *,
    workflow: str,
    input: JSON,  # noqa: A002
    version: str | None,
    forked_from: str | None = None,
    attributes: dict[str, JSON] | None = None,
    deadline: datetime | None = None,
    parent_id: str | None = None,
    root_id: str | None = None,
    parent_call: str | None = None,
) -> NewEvent:
    """The first event of every run, written by the store that creates it.

    A fork names the run it was forked from; other runs write no ``forked_from`` key, so
    their logs stay as earlier releases wrote them. So do ``attributes`` and
    ``deadline``: written only when the run has some.
    """
    data: dict[str, JSON] = {"workflow": workflow, "input": input, "version": version}
    if forked_from is not None:
        data["forked_from"] = forked_from
    if attributes:
        data["attributes"] = attributes
    if deadline is not None:
        data["deadline"] = deadline.isoformat()
    if parent_id is not None:
        data["parent_id"] = parent_id
        data["root_id"] = root_id or parent_id
        if parent_call is not None:
            data["parent_call"] = parent_call
    return NewEvent(EventType.RUN_CREATED, None, data)


def run_started(*, worker: str) -> NewEvent:
    """A worker began the run's first life (replays after a crash log nothing new)."""
    return NewEvent(EventType.RUN_STARTED, None, {"worker": worker})


def step_started(
    cid: str,
    *,
    name: str,
    attempt: int,
    input: JSON,  # noqa: A002
    queue: str | None = None,
) -> NewEvent:
    """An attempt of a step begins; with ``queue``, a queue's worker will run it."""
    if queue is None:
        return NewEvent(
            EventType.STEP_STARTED, cid, {"name": name, "attempt": attempt, "input": input}
        )
    return NewEvent(
        EventType.STEP_STARTED,
        cid,
        {"name": name, "attempt": attempt, "input": input, "queue": queue},
    )


def step_retrying(
    cid: str, *, name: str, attempt: int, error: ErrorRecord, retry_at: datetime
) -> NewEvent:
    """Attempt ``attempt`` failed; the next one starts at ``retry_at``."""
    return NewEvent(
        EventType.STEP_RETRYING,
        cid,
        {"name": name, "attempt": attempt, "error": error, "retry_at": retry_at.isoformat()},
    )


def step_completed(cid: str, *, name: str, attempt: int, output: JSON) -> NewEvent:
    """The step returned ``output`` (encoded) on attempt ``attempt``."""
    return NewEvent(
        EventType.STEP_COMPLETED, cid, {"name": name, "attempt": attempt, "output": output}
    )


def step_failed(cid: str, *, name: str, attempt: int, error: ErrorRecord) -> NewEvent:
    """The step failed for good on attempt ``attempt``; the workflow sees ``error``."""
    return NewEvent(EventType.STEP_FAILED, cid, {"name": name, "attempt": attempt, "error": error})


def sleep_started(cid: str, *, wake_at: datetime) -> NewEvent:
    """A durable sleep until ``wake_at`` (timezone-aware; the clock's is UTC)."""
    return NewEvent(EventType.SLEEP_STARTED, cid, {"wake_at": wake_at.isoformat()})


def sleep_completed(cid: str, *, cancelled: bool) -> NewEvent:
    """The sleep's timer fired, or (``cancelled``) the workflow stopped waiting on it."""
    return NewEvent(EventType.SLEEP_COMPLETED, cid, {"cancelled": cancelled})


def hook_created(
    cid: str,
    *,
    token: str,
    name: str,
    kind: str,
    respond_with: int | None = None,
    body: JSON = None,
    error: str | None = None,
    schema: dict[str, JSON] | None = None,
) -> NewEvent:
    """A hook (or, with ``respond_with``, a webhook) starts accepting payloads.

    ``error`` is the message of a token already held: then no hook is live.
    ``schema`` is the JSON Schema its payloads must pass, wherever they are sent from.
    """
    data: dict[str, JSON] = {"token": token, "name": name, "kind": kind}
    if respond_with is not None:
        data["respond_with"] = respond_with
        data["body"] = body
    if error is not None:
        data["error"] = error
    if schema is not None:
        data["schema"] = schema
    return NewEvent(EventType.HOOK_CREATED, cid, data)


def hook_conflict(event: NewEvent, message: str) -> NewEvent:
    """The same ``hook_created`` event, marked with the error that its token is taken."""
    created = HookCreated.of(event)
    return hook_created(
        created.correlation_id,
        token=created.token,
        name=created.name,
        kind=created.kind,
        respond_with=created.respond_with,
        body=created.body,
        error=message,
        schema=created.schema,
    )


def hook_received(cid: str, *, token: str, payload: JSON, error: str | None = None) -> NewEvent:
    """A payload (encoded) that `resume` stored, now delivered to the hook.

    ``error``: the stored payload could not be read back (a damaged row); the workflow
    gets this error at its await instead of a payload.
    """
    if error is None:
        return NewEvent(EventType.HOOK_RECEIVED, cid, {"token": token, "payload": payload})
    return NewEvent(
        EventType.HOOK_RECEIVED, cid, {"token": token, "payload": payload, "error": error}
    )


def hook_disposed(cid: str, *, token: str) -> NewEvent:
    """The hook stops accepting payloads; its token is free again."""
    return NewEvent(EventType.HOOK_DISPOSED, cid, {"token": token})


def run_completed(*, output: JSON) -> NewEvent:
    """The workflow returned ``output`` (encoded). Terminal."""
    return NewEvent(EventType.RUN_COMPLETED, None, {"output": output})


def run_failed(*, error: ErrorRecord) -> NewEvent:
    """The workflow raised ``error``. Terminal."""
    return NewEvent(EventType.RUN_FAILED, None, {"error": error})


def run_cancelled(*, reason: str | None = None) -> NewEvent:
    """The run was cancelled (``reason``: why, when not by a caller). Terminal."""
    if reason is None:
        return NewEvent(EventType.RUN_CANCELLED)
    return NewEvent(EventType.RUN_CANCELLED, None, {"reason": reason})


def run_blocked(*, reason: str, version: str | None, worker: str | None) -> NewEvent:
    """The run is set aside, not failed: ``reason`` says why. Not terminal."""
    return NewEvent(
        EventType.RUN_BLOCKED, None, {"reason": reason, "version": version, "worker": worker}
    )


def run_unblocked(*, by: str | None) -> NewEvent:
    """A blocked run is due again: a worker whose code differs, or a caller, retries it."""
    return NewEvent(EventType.RUN_UNBLOCKED, None, {"by": by})


def patch_marked(cid: str, *, patch: str) -> NewEvent:
    """The run reached ``perdure.patched(patch)`` on code with the patch: new branch."""
    return NewEvent(EventType.PATCH_MARKED, cid, {"patch": patch})


def child_started(
    cid: str,
    *,
    workflow: str,
    run_id: str,
    input: JSON,  # noqa: A002
    detached: bool,
) -> NewEvent:
    """The workflow started a child run ``run_id`` (which exists once this is logged)."""
    data: dict[str, JSON] = {"workflow": workflow, "run_id": run_id, "input": input}
    if detached:
        data["detached"] = True
    return NewEvent(EventType.CHILD_STARTED, cid, data)


def child_completed(
    cid: str,
    *,
    run_id: str,
    status: str,
    output: JSON = None,
    error: ErrorRecord | None = None,
) -> NewEvent:
    """The child run ``run_id`` ended ``status``; its output or error, delivered to the parent."""
    data: dict[str, JSON] = {"run_id": run_id, "status": status}
    if error is not None:
        data["error"] = error
    elif status == "completed":
        data["output"] = output
    return NewEvent(EventType.CHILD_COMPLETED, cid, data)


def step_cancelled(cid: str, *, name: str, attempt: int) -> NewEvent:
    """Attempt ``attempt`` of the step was running when its run was cancelled."""
    return NewEvent(EventType.STEP_CANCELLED, cid, {"name": name, "attempt": attempt})


def stream_written(cid: str, *, stream: str, value: JSON, close: bool = False) -> NewEvent:
    """The workflow body wrote ``value`` to a durable stream (``close``: closed it)."""
    data: dict[str, JSON] = {"stream": stream, "value": value}
    if close:
        data["close"] = True
    return NewEvent(EventType.STREAM_WRITTEN, cid, data)


def attributes_set(cid: str, *, values: dict[str, JSON]) -> NewEvent:
    """The workflow called ``perdure.set_attributes(**values)``."""
    return NewEvent(EventType.ATTRIBUTES_SET, cid, {"values": values})


CONSTRUCTORS: dict[EventType, Callable[..., NewEvent]] = {
    EventType.RUN_CREATED: run_created,
    EventType.RUN_STARTED: run_started,
    EventType.STEP_STARTED: step_started,
    EventType.STEP_RETRYING: step_retrying,
    EventType.STEP_COMPLETED: step_completed,
    EventType.STEP_FAILED: step_failed,
    EventType.SLEEP_STARTED: sleep_started,
    EventType.SLEEP_COMPLETED: sleep_completed,
    EventType.HOOK_CREATED: hook_created,
    EventType.HOOK_RECEIVED: hook_received,
    EventType.HOOK_DISPOSED: hook_disposed,
    EventType.RUN_COMPLETED: run_completed,
    EventType.RUN_FAILED: run_failed,
    EventType.RUN_CANCELLED: run_cancelled,
    EventType.RUN_BLOCKED: run_blocked,
    EventType.RUN_UNBLOCKED: run_unblocked,
    EventType.PATCH_MARKED: patch_marked,
    EventType.ATTRIBUTES_SET: attributes_set,
    EventType.CHILD_STARTED: child_started,
    EventType.CHILD_COMPLETED: child_completed,
    EventType.STEP_CANCELLED: step_cancelled,
    EventType.STREAM_WRITTEN: stream_written,
}
"""The constructor of each event type (a test checks every type has one)."""


# -- reading keys, with errors that say where ------------------------------------------


def _fail(event: AnyEvent, run_id: str | None, key: str | None, problem: str) -> LogFormatError:
    if isinstance(event, Event):
        run_id, seq = event.run_id, event.seq
    else:
        seq = None
    event_type = getattr(event.type, "value", str(event.type))
    where = f"run {run_id!r}, " if run_id is not None else ""
    where += f"event #{seq} " if seq is not None else "an event "
    where += f"({event_type}"
    where += f" {event.correlation_id})" if event.correlation_id else ")"
    what = f"{key!r} {problem}" if key is not None else problem
    return LogFormatError(
        f"{where}: {what}", run_id=run_id, seq=seq, event_type=event_type, key=key
    )


def _describe(value: object) -> str:
    return "it is missing" if value is _MISSING else f"got {value!r}"


_MISSING: Any = object()


def _cid(event: AnyEvent, run_id: str | None) -> str:
    cid = event.correlation_id
    if not isinstance(cid, str) or not cid:
        raise _fail(event, run_id, "correlation_id", f"must be a non-empty string, got {cid!r}")
    return cid


def _str(event: AnyEvent, run_id: str | None, key: str) -> str:
    value = event.data.get(key, _MISSING)
    if not isinstance(value, str):
        raise _fail(event, run_id, key, f"must be a string; {_describe(value)}")
    return value


def _token(event: AnyEvent, run_id: str | None) -> str:
    value = event.data.get("token", _MISSING)
    if not isinstance(value, str) or not value:
        raise _fail(event, run_id, "token", f"must be a non-empty string; {_describe(value)}")
    return value


def _optional_str(event: AnyEvent, run_id: str | None, key: str) -> str | None:
    value = event.data.get(key)
    if value is not None and not isinstance(value, str):
        raise _fail(event, run_id, key, f"must be a string or absent; got {value!r}")
    return value


def _attempt(event: AnyEvent, run_id: str | None) -> int:
    value = event.data.get("attempt", _MISSING)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise _fail(event, run_id, "attempt", f"must be an int of at least 1; {_describe(value)}")
    return value


def _error(event: AnyEvent, run_id: str | None) -> ErrorRecord:
    value = event.data.get("error", _MISSING)
    if not isinstance(value, dict):
        raise _fail(
            event, run_id, "error", f"must be an error record (an object); {_describe(value)}"
        )
    return value


def _time(event: AnyEvent, run_id: str | None, key: str) -> datetime:
    """An ISO 8601 time; one without an offset is taken as UTC."""
    value = event.data.get(key, _MISSING)
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise _fail(event, run_id, key, f"must be an ISO 8601 time; {_describe(value)}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def event_type(value: str, *, run_id: str, seq: int) -> EventType:
    """The type of a stored event, as a store reads it from its row.

    Raises:
        LogFormatError: a type this release does not know (a log a later one wrote).
    """
    try:
        return EventType(value)
    except ValueError:
        raise LogFormatError(
            f"run {run_id!r}, event #{seq} ({value}): is an event type this version of "
            "perdure does not know",
            run_id=run_id,
            seq=seq,
            event_type=value,
            key=None,
        ) from None


# -- parsed events: what readers get ---------------------------------------------------
#
# Frozen and slotted: a reader cannot change the log through them, and the store's
# index parses every appended event. Unknown keys are ignored (forward compatibility).


class _Entry:
    """What every parsed event has: its type, and `of` to parse an event of that type."""

    __slots__ = ()
    TYPE: ClassVar[EventType]

    @classmethod
    def of(cls, event: AnyEvent, *, run_id: str | None = None) -> Self:
        """Parse an event of this type; see `parse` for ``run_id`` and the errors.

        Raises:
            LogFormatError: the event is of another type, or lacks a key, or has one of
                the wrong type.
        """
        if event.type is not cls.TYPE:
            raise _fail(event, run_id, None, f"is not a {cls.TYPE.value} event")
        return cls.read(event, run_id)

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        """Parse an event known to be of this type (`of` and `parse` check the type first)."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True)
class RunCreated(_Entry):
    """``run_created``: the workflow's name, its encoded call and its code version.

    ``forked_from`` is the run a fork's log was copied from (None: not a fork);
    ``attributes`` those it started with; ``deadline`` when it is cancelled if not ended;
    ``parent_id`` and ``root_id`` a child run's parent and the top of its tree.
    """

    TYPE: ClassVar[EventType] = EventType.RUN_CREATED
    workflow: str
    input: JSON
    version: str | None
    forked_from: str | None = None
    attributes: dict[str, JSON] | None = None
    deadline: datetime | None = None
    parent_id: str | None = None
    root_id: str | None = None

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(
            _str(event, run_id, "workflow"),
            event.data.get("input"),
            _optional_str(event, run_id, "version"),
            _optional_str(event, run_id, "forked_from"),
            _attribute_values(event, run_id, optional=True) or None,
            _time(event, run_id, "deadline") if "deadline" in event.data else None,
            parent_id=_optional_str(event, run_id, "parent_id"),
            root_id=_optional_str(event, run_id, "root_id"),
        )


@dataclass(frozen=True, slots=True)
class RunStarted(_Entry):
    """``run_started``: the worker that began the run (None in a log that lacks it)."""

    TYPE: ClassVar[EventType] = EventType.RUN_STARTED
    worker: str | None

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(_optional_str(event, run_id, "worker"))


@dataclass(frozen=True, slots=True)
class StepStarted(_Entry):
    """``step_started``: an attempt of a step begins (on a queue's worker, with ``queue``)."""

    TYPE: ClassVar[EventType] = EventType.STEP_STARTED
    correlation_id: str
    name: str
    attempt: int
    input: JSON
    queue: str | None

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        # Every step's start is parsed by the store's index: check the usual shape in one
        # go, and leave naming the faulty key to the careful path.
        data, cid = event.data, event.correlation_id
        name, attempt, queue = data.get("name"), data.get("attempt"), data.get("queue")
        if (
            type(cid) is str
            and cid
            and type(name) is str
            and type(attempt) is int
            and attempt >= 1
            and (queue is None or (type(queue) is str and queue))
        ):
            return cls(cid, name, attempt, data.get("input"), queue)
        if queue is not None and (not isinstance(queue, str) or not queue):
            raise _fail(
                event, run_id, "queue", f"must be a non-empty string or absent; got {queue!r}"
            )
        return cls(
            _cid(event, run_id),
            _str(event, run_id, "name"),
            _attempt(event, run_id),
            data.get("input"),
            queue,
        )


@dataclass(frozen=True, slots=True)
class StepRetrying(_Entry):
    """``step_retrying``: attempt ``attempt`` failed with ``error``; retry at ``retry_at``."""

    TYPE: ClassVar[EventType] = EventType.STEP_RETRYING
    correlation_id: str
    name: str
    attempt: int
    error: ErrorRecord
    retry_at: datetime

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(
            _cid(event, run_id),
            _str(event, run_id, "name"),
            _attempt(event, run_id),
            _error(event, run_id),
            _time(event, run_id, "retry_at"),
        )


@dataclass(frozen=True, slots=True)
class StepCompleted(_Entry):
    """``step_completed``: the step returned ``output`` (encoded)."""

    TYPE: ClassVar[EventType] = EventType.STEP_COMPLETED
    correlation_id: str
    name: str
    attempt: int
    output: JSON

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        data, cid = event.data, event.correlation_id
        name, attempt = data.get("name"), data.get("attempt")
        if type(cid) is str and cid and type(name) is str and type(attempt) is int and attempt >= 1:
            return cls(cid, name, attempt, data.get("output"))  # the usual shape, checked at once
        return cls(
            _cid(event, run_id),
            _str(event, run_id, "name"),
            _attempt(event, run_id),
            data.get("output"),
        )


@dataclass(frozen=True, slots=True)
class StepFailed(_Entry):
    """``step_failed``: the step failed for good with ``error``."""

    TYPE: ClassVar[EventType] = EventType.STEP_FAILED
    correlation_id: str
    name: str
    attempt: int
    error: ErrorRecord

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(
            _cid(event, run_id),
            _str(event, run_id, "name"),
            _attempt(event, run_id),
            _error(event, run_id),
        )


@dataclass(frozen=True, slots=True)
class SleepStarted(_Entry):
    """``sleep_started``: a durable sleep until ``wake_at`` (aware, UTC)."""

    TYPE: ClassVar[EventType] = EventType.SLEEP_STARTED
    correlation_id: str
    wake_at: datetime

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(_cid(event, run_id), _time(event, run_id, "wake_at"))


@dataclass(frozen=True, slots=True)
class SleepCompleted(_Entry):
    """``sleep_completed``: the timer fired, or (``cancelled``) the wait was dropped."""

    TYPE: ClassVar[EventType] = EventType.SLEEP_COMPLETED
    correlation_id: str
    cancelled: bool

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        cancelled = event.data.get("cancelled", False)
        if not isinstance(cancelled, bool):
            raise _fail(event, run_id, "cancelled", f"must be true or false; got {cancelled!r}")
        return cls(_cid(event, run_id), cancelled)


@dataclass(frozen=True, slots=True)
class HookCreated(_Entry):
    """``hook_created``: a hook or webhook accepts payloads, unless ``error`` is set.

    ``error`` says the token was taken (then no hook is live). A webhook has
    ``respond_with`` and ``body``: what each request to it is answered with. ``schema``
    is the JSON Schema of its payloads, None for a hook created without one (by an
    older perdure, or of a type pydantic cannot describe).
    """

    TYPE: ClassVar[EventType] = EventType.HOOK_CREATED
    correlation_id: str
    token: str
    name: str
    kind: str
    respond_with: int | None
    body: JSON
    error: str | None
    schema: dict[str, JSON] | None = None

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        data = event.data
        kind = data.get("kind", "hook")
        if not isinstance(kind, str):
            raise _fail(event, run_id, "kind", f"must be a string; got {kind!r}")
        respond_with = data.get("respond_with")
        if respond_with is not None and (
            not isinstance(respond_with, int) or isinstance(respond_with, bool)
        ):
            raise _fail(event, run_id, "respond_with", f"must be an int; got {respond_with!r}")
        schema = data.get("schema")
        if schema is not None and not isinstance(schema, dict):
            raise _fail(event, run_id, "schema", f"must be a JSON Schema object; got {schema!r}")
        return cls(
            _cid(event, run_id),
            _token(event, run_id),
            _str(event, run_id, "name"),
            kind,
            respond_with,
            data.get("body"),
            _optional_str(event, run_id, "error"),
            schema,
        )


@dataclass(frozen=True, slots=True)
class HookReceived(_Entry):
    """``hook_received``: a payload (encoded) delivered to the hook holding ``token``.

    ``error`` is set instead when the stored payload could not be read back.
    """

    TYPE: ClassVar[EventType] = EventType.HOOK_RECEIVED
    correlation_id: str
    token: str
    payload: JSON
    error: str | None = None

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(
            _cid(event, run_id),
            _token(event, run_id),
            event.data.get("payload"),
            _optional_str(event, run_id, "error"),
        )


@dataclass(frozen=True, slots=True)
class HookDisposed(_Entry):
    """``hook_disposed``: the hook holding ``token`` stops accepting payloads."""

    TYPE: ClassVar[EventType] = EventType.HOOK_DISPOSED
    correlation_id: str
    token: str

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(_cid(event, run_id), _token(event, run_id))


@dataclass(frozen=True, slots=True)
class RunCompleted(_Entry):
    """``run_completed``: the workflow returned ``output`` (encoded)."""

    TYPE: ClassVar[EventType] = EventType.RUN_COMPLETED
    output: JSON

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:  # noqa: ARG003 (no key to fault)
        return cls(event.data.get("output"))


@dataclass(frozen=True, slots=True)
class RunFailed(_Entry):
    """``run_failed``: the workflow raised ``error``."""

    TYPE: ClassVar[EventType] = EventType.RUN_FAILED
    error: ErrorRecord

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(_error(event, run_id))


@dataclass(frozen=True, slots=True)
class RunCancelled(_Entry):
    """``run_cancelled``: the run was cancelled (``reason``: why, unless by a caller)."""

    TYPE: ClassVar[EventType] = EventType.RUN_CANCELLED
    reason: str | None = None

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(_optional_str(event, run_id, "reason"))


@dataclass(frozen=True, slots=True)
class RunBlocked(_Entry):
    """``run_blocked``: why the run was set aside, and by which code version."""

    TYPE: ClassVar[EventType] = EventType.RUN_BLOCKED
    reason: str
    version: str | None
    worker: str | None

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(
            _str(event, run_id, "reason"),
            _optional_str(event, run_id, "version"),
            _optional_str(event, run_id, "worker"),
        )


@dataclass(frozen=True, slots=True)
class RunUnblocked(_Entry):
    """``run_unblocked``: the blocked run is due again (``by`` whom, when known)."""

    TYPE: ClassVar[EventType] = EventType.RUN_UNBLOCKED
    by: str | None

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(_optional_str(event, run_id, "by"))


@dataclass(frozen=True, slots=True)
class PatchMarked(_Entry):
    """``patch_marked``: the run took the new branch of the patch ``patch``."""

    TYPE: ClassVar[EventType] = EventType.PATCH_MARKED
    correlation_id: str
    patch: str

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(_cid(event, run_id), _str(event, run_id, "patch"))


@dataclass(frozen=True, slots=True)
class AttributesSet(_Entry):
    """``attributes_set``: the values one `perdure.set_attributes` call gave."""

    TYPE: ClassVar[EventType] = EventType.ATTRIBUTES_SET
    correlation_id: str
    values: dict[str, JSON]

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(_cid(event, run_id), _attribute_values(event, run_id, optional=False))


def _attribute_values(event: AnyEvent, run_id: str | None, *, optional: bool) -> dict[str, JSON]:
    """The flat ``{key: str | int | float | bool}`` object under ``values``/``attributes``."""
    key = "attributes" if event.type is EventType.RUN_CREATED else "values"
    value = event.data.get(key, {} if optional else _MISSING)
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str | int | float) for k, v in value.items()
    ):
        raise _fail(
            event,
            run_id,
            key,
            f"must be an object of str, number and bool values; {_describe(value)}",
        )
    return value


_CHILD_ENDS = ("completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class ChildStarted(_Entry):
    """``child_started``: the workflow started the child run ``run_id``."""

    TYPE: ClassVar[EventType] = EventType.CHILD_STARTED
    correlation_id: str
    workflow: str
    run_id: str
    input: JSON
    detached: bool = False

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        detached = event.data.get("detached", False)
        if not isinstance(detached, bool):
            raise _fail(event, run_id, "detached", f"must be true or false; got {detached!r}")
        return cls(
            _cid(event, run_id),
            _str(event, run_id, "workflow"),
            _str(event, run_id, "run_id"),
            event.data.get("input"),
            detached,
        )


@dataclass(frozen=True, slots=True)
class ChildCompleted(_Entry):
    """``child_completed``: the child run ended; its output (completed) or error (failed)."""

    TYPE: ClassVar[EventType] = EventType.CHILD_COMPLETED
    correlation_id: str
    run_id: str
    status: str
    output: JSON = None
    error: ErrorRecord | None = None

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        status = _str(event, run_id, "status")
        if status not in _CHILD_ENDS:
            raise _fail(event, run_id, "status", f"must be one of {_CHILD_ENDS}; got {status!r}")
        return cls(
            _cid(event, run_id),
            _str(event, run_id, "run_id"),
            status,
            event.data.get("output"),
            _error(event, run_id) if status == "failed" else None,
        )


@dataclass(frozen=True, slots=True)
class StepCancelled(_Entry):
    """``step_cancelled``: the attempt running when the run was cancelled."""

    TYPE: ClassVar[EventType] = EventType.STEP_CANCELLED
    correlation_id: str
    name: str
    attempt: int

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        return cls(_cid(event, run_id), _str(event, run_id, "name"), _attempt(event, run_id))


@dataclass(frozen=True, slots=True)
class StreamWritten(_Entry):
    """``stream_written``: a chunk the workflow body wrote to a durable stream."""

    TYPE: ClassVar[EventType] = EventType.STREAM_WRITTEN
    correlation_id: str
    stream: str
    value: JSON
    close: bool

    @classmethod
    def read(cls, event: AnyEvent, run_id: str | None) -> Self:
        close = event.data.get("close", False)
        if not isinstance(close, bool):
            raise _fail(event, run_id, "close", f"must be true or false; got {close!r}")
        return cls(
            _cid(event, run_id), _str(event, run_id, "stream"), event.data.get("value"), close
        )


LogEntry = (
    RunCreated
    | RunStarted
    | StepStarted
    | StepRetrying
    | StepCompleted
    | StepFailed
    | SleepStarted
    | SleepCompleted
    | HookCreated
    | HookReceived
    | HookDisposed
    | RunCompleted
    | RunFailed
    | RunCancelled
    | RunBlocked
    | RunUnblocked
    | PatchMarked
    | AttributesSet
    | ChildStarted
    | ChildCompleted
    | StepCancelled
    | StreamWritten
)
"""Any parsed event: match on its class to tell them apart."""

_ENTRY_TYPES: tuple[type[LogEntry], ...] = (
    RunCreated,
    RunStarted,
    StepStarted,
    StepRetrying,
    StepCompleted,
    StepFailed,
    SleepStarted,
    SleepCompleted,
    HookCreated,
    HookReceived,
    HookDisposed,
    RunCompleted,
    RunFailed,
    RunCancelled,
    PatchMarked,
    RunBlocked,
    RunUnblocked,
    AttributesSet,
    ChildStarted,
    ChildCompleted,
    StepCancelled,
    StreamWritten,
)

PARSERS: dict[EventType, Callable[[AnyEvent, str | None], LogEntry]] = {
    kind.TYPE: kind.read for kind in _ENTRY_TYPES
}
"""The parser of each event type (a test checks every type has one)."""


def parse(event: AnyEvent, *, run_id: str | None = None) -> LogEntry:
    """The typed value of any event, for readers that walk a log.

    ``run_id`` names the run in errors about an event not yet appended (a stored
    `Event` carries its own).

    Raises:
        LogFormatError: a key is missing or of the wrong type, or the event's type is
            one this release does not know (a log written by a newer one).
    """
    parser = PARSERS.get(event.type)
    if parser is None:
        raise _fail(event, run_id, None, "is an event type this version of perdure does not know")
    return parser(event, run_id)
