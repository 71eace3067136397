"""perdure._log: every event type's constructor and parser agree, and bad logs say where."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from perdure import _log
from perdure._records import Event, EventType, NewEvent

T0 = datetime(2030, 1, 1, tzinfo=UTC)
ERROR = {"type": "builtins.ValueError", "message": "no", "traceback": "Traceback..."}

EXAMPLES: dict[EventType, tuple[NewEvent, _log.LogEntry]] = {
    EventType.RUN_CREATED: (
        _log.run_created(workflow="wf", input={"args": [1], "kwargs": {}}, version="v1"),
        _log.RunCreated("wf", {"args": [1], "kwargs": {}}, "v1"),
    ),
    EventType.RUN_STARTED: (_log.run_started(worker="w1"), _log.RunStarted("w1")),
    EventType.STEP_STARTED: (
        _log.step_started("fetch#1", name="fetch", attempt=1, input={"args": ["k"]}, queue="gpu"),
        _log.StepStarted("fetch#1", "fetch", 1, {"args": ["k"]}, "gpu"),
    ),
    EventType.STEP_RETRYING: (
        _log.step_retrying(
            "fetch#1", name="fetch", attempt=1, error=ERROR, retry_at=T0 + timedelta(seconds=2)
        ),
        _log.StepRetrying("fetch#1", "fetch", 1, ERROR, T0 + timedelta(seconds=2)),
    ),
    EventType.STEP_COMPLETED: (
        _log.step_completed("fetch#1", name="fetch", attempt=2, output=[1, "x"]),
        _log.StepCompleted("fetch#1", "fetch", 2, [1, "x"]),
    ),
    EventType.STEP_FAILED: (
        _log.step_failed("fetch#1", name="fetch", attempt=3, error=ERROR),
        _log.StepFailed("fetch#1", "fetch", 3, ERROR),
    ),
    EventType.SLEEP_STARTED: (
        _log.sleep_started("sleep#1", wake_at=T0 + timedelta(days=7)),
        _log.SleepStarted("sleep#1", T0 + timedelta(days=7)),
    ),
    EventType.SLEEP_COMPLETED: (
        _log.sleep_completed("sleep#1", cancelled=True),
        _log.SleepCompleted("sleep#1", cancelled=True),
    ),
    EventType.HOOK_CREATED: (
        _log.hook_created(
            "webhook#1", token="tok", name="webhook", kind="webhook", respond_with=201, body="ok"
        ),
        _log.HookCreated("webhook#1", "tok", "webhook", "webhook", 201, "ok", None),
    ),
    EventType.HOOK_RECEIVED: (
        _log.hook_received("approval#1", token="tok", payload={"ok": True}),
        _log.HookReceived("approval#1", "tok", {"ok": True}),
    ),
    EventType.HOOK_DISPOSED: (
        _log.hook_disposed("approval#1", token="tok"),
        _log.HookDisposed("approval#1", "tok"),
    ),
    EventType.RUN_COMPLETED: (_log.run_completed(output=None), _log.RunCompleted(None)),
    EventType.RUN_FAILED: (_log.run_failed(error=ERROR), _log.RunFailed(ERROR)),
    EventType.RUN_CANCELLED: (_log.run_cancelled(), _log.RunCancelled()),
    EventType.PATCH_MARKED: (
        _log.patch_marked("patch.charge-first#1", patch="charge-first"),
        _log.PatchMarked("patch.charge-first#1", "charge-first"),
    ),
    EventType.RUN_BLOCKED: (
        _log.run_blocked(reason="durable call #2 is step b", version="v2", worker="w1"),
        _log.RunBlocked("durable call #2 is step b", "v2", "w1"),
    ),
    EventType.RUN_UNBLOCKED: (_log.run_unblocked(by="w2"), _log.RunUnblocked("w2")),
    EventType.ATTRIBUTES_SET: (
        _log.attributes_set("attributes#1", values={"customer": "acme", "n": 3, "vip": True}),
        _log.AttributesSet("attributes#1", {"customer": "acme", "n": 3, "vip": True}),
    ),
    EventType.CHILD_STARTED: (
        _log.child_started(
            "child.pay#1", workflow="pay", run_id="c1", input={"args": [5]}, detached=True
        ),
        _log.ChildStarted("child.pay#1", "pay", "c1", {"args": [5]}, detached=True),
    ),
    EventType.CHILD_COMPLETED: (
        _log.child_completed("child.pay#1", run_id="c1", status="failed", error=ERROR),
        _log.ChildCompleted("child.pay#1", "c1", "failed", None, ERROR),
    ),
    EventType.STEP_CANCELLED: (
        _log.step_cancelled("fetch#1", name="fetch", attempt=2),
        _log.StepCancelled("fetch#1", "fetch", 2),
    ),
    EventType.STREAM_WRITTEN: (
        _log.stream_written("stream:tokens#3", stream="tokens", value={"text": "Hi"}),
        _log.StreamWritten("stream:tokens#3", "tokens", {"text": "Hi"}, close=False),
    ),
}
"""One event of every type, as a writer builds it, and what a reader gets back."""


def stored(event: NewEvent, seq: int = 7, data: dict[str, object] | None = None) -> Event:
    """The event as a store hands it back: through JSON, with a run and a place."""
    raw = json.loads(json.dumps(event.data if data is None else data))
    return Event("r1", seq, event.type, event.correlation_id, raw, T0)


def test_every_event_type_has_a_constructor_a_parser_and_an_example() -> None:
    """A new EventType fails here until it has its constructor, parser and round trip."""
    assert set(EventType) == set(_log.CONSTRUCTORS)
    assert set(EventType) == set(_log.PARSERS)
    assert set(EventType) == set(EXAMPLES)


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_what_a_constructor_writes_its_parser_reads_back(event_type: EventType) -> None:
    """Built, stored as JSON and parsed, every event gives back what was written."""
    event, expected = EXAMPLES[event_type]

    assert event.type is event_type
    assert expected == _log.parse(stored(event))
    assert expected == _log.parse(event)  # before it is stored, as the store's index reads it
    assert expected == type(expected).of(stored(event))


def test_optional_keys_are_written_only_when_set() -> None:
    """An inline step has no queue key and a plain hook no response: absent means none."""
    step = _log.step_started("a#1", name="a", attempt=1, input=None)
    hook = _log.hook_created("h#1", token="t", name="h", kind="hook")

    assert {"name": "a", "attempt": 1, "input": None} == step.data
    assert {"token": "t", "name": "h", "kind": "hook"} == hook.data
    assert None is _log.StepStarted.of(step).queue
    assert (None, None) == (_log.HookCreated.of(hook).respond_with, _log.HookCreated.of(hook).error)


def test_a_hook_keeps_the_json_schema_of_its_payloads() -> None:
    """A hook's schema is written with it and read back; a log without one reads as None,
    and a conflict keeps it."""
    schema = {"type": "object", "required": ["decision"]}
    event = _log.hook_created("approval#1", token="t", name="approval", kind="hook", schema=schema)

    assert schema == event.data["schema"]
    assert _log.HookCreated("approval#1", "t", "approval", "hook", None, None, None, schema) == (
        _log.parse(stored(event))
    )
    assert schema == _log.HookCreated.of(_log.hook_conflict(event, "taken")).schema
    assert (
        None
        is _log.HookCreated.of(_log.hook_created("a#1", token="t", name="a", kind="hook")).schema
    )


def test_a_hook_conflict_is_the_same_hook_created_with_its_error() -> None:
    """Marking a webhook's hook_created as refused keeps its response and adds the error."""
    event, _ = EXAMPLES[EventType.HOOK_CREATED]

    marked = _log.hook_conflict(event, "token 'tok' is taken")

    assert {**event.data, "error": "token 'tok' is taken"} == marked.data
    assert "token 'tok' is taken" == _log.HookCreated.of(marked).error


@pytest.mark.parametrize("event_type", list(EventType), ids=str)
def test_unknown_keys_are_ignored(event_type: EventType) -> None:
    """A key a later release may add changes nothing for this one (forward compatibility)."""
    event, expected = EXAMPLES[event_type]

    extra = stored(event, data={**event.data, "added_by_a_later_release": {"x": [1]}})

    assert expected == _log.parse(extra)


@pytest.mark.parametrize(
    ("event_type", "key"),
    [
        (EventType.RUN_CREATED, "workflow"),
        (EventType.STEP_STARTED, "name"),
        (EventType.STEP_STARTED, "attempt"),
        (EventType.STEP_RETRYING, "retry_at"),
        (EventType.STEP_RETRYING, "error"),
        (EventType.STEP_COMPLETED, "attempt"),
        (EventType.STEP_FAILED, "error"),
        (EventType.SLEEP_STARTED, "wake_at"),
        (EventType.HOOK_CREATED, "token"),
        (EventType.HOOK_CREATED, "name"),
        (EventType.HOOK_RECEIVED, "token"),
        (EventType.HOOK_DISPOSED, "token"),
        (EventType.RUN_FAILED, "error"),
    ],
)
def test_a_missing_key_is_a_log_format_error_naming_it(event_type: EventType, key: str) -> None:
    """The error names the run, the event's place and type, and the key that is missing."""
    event, _ = EXAMPLES[event_type]
    data = {k: v for k, v in event.data.items() if k != key}

    with pytest.raises(_log.LogFormatError) as caught:
        _log.parse(stored(event, seq=12, data=data))

    error = caught.value
    assert (error.run_id, error.seq, error.event_type, error.key) == ("r1", 12, event_type, key)
    assert f"run 'r1', event #12 ({event_type.value}" in str(error)
    assert f"{key!r}" in str(error)
    assert "missing" in str(error)
    assert isinstance(error, ValueError)


@pytest.mark.parametrize(
    ("event_type", "key", "value"),
    [
        (EventType.STEP_STARTED, "attempt", "1"),
        (EventType.STEP_STARTED, "attempt", True),
        (EventType.STEP_STARTED, "attempt", 0),
        (EventType.STEP_STARTED, "name", 3),
        (EventType.STEP_STARTED, "queue", ""),
        (EventType.STEP_STARTED, "queue", 7),
        (EventType.STEP_COMPLETED, "name", None),
        (EventType.STEP_RETRYING, "retry_at", "soon"),
        (EventType.STEP_FAILED, "error", "boom"),
        (EventType.SLEEP_STARTED, "wake_at", 12),
        (EventType.SLEEP_COMPLETED, "cancelled", "no"),
        (EventType.HOOK_CREATED, "respond_with", "201"),
        (EventType.HOOK_CREATED, "error", {"message": "taken"}),
        (EventType.HOOK_CREATED, "token", ""),
        (EventType.HOOK_CREATED, "schema", "an object"),
        (EventType.HOOK_CREATED, "schema", [1]),
        (EventType.RUN_STARTED, "worker", 1),
        (EventType.RUN_CREATED, "version", 2),
    ],
)
def test_a_key_of_the_wrong_type_is_a_log_format_error_naming_it(
    event_type: EventType, key: str, value: object
) -> None:
    """A value of the wrong type is refused with the key and the value it found."""
    event, _ = EXAMPLES[event_type]

    with pytest.raises(_log.LogFormatError) as caught:
        _log.parse(stored(event, data={**event.data, key: value}))

    assert key == caught.value.key
    assert f"{key!r}" in str(caught.value)
    assert repr(value) in str(caught.value)


def test_an_event_of_a_call_needs_its_correlation_id() -> None:
    """A step, sleep or hook event without a correlation id cannot be matched to a call."""
    event = NewEvent(EventType.STEP_COMPLETED, None, {"name": "a", "attempt": 1, "output": 1})

    with pytest.raises(_log.LogFormatError, match="'correlation_id'") as caught:
        _log.parse(event, run_id="r9")

    assert ("r9", None) == (caught.value.run_id, caught.value.seq)
    assert str(caught.value).startswith("run 'r9', an event (step_completed)")


def test_an_event_type_this_release_does_not_know_is_refused() -> None:
    """A log written by a later release with a new event type is refused, not skipped."""
    event = Event("r1", 4, "stream_chunk", "s#1", {}, T0)  # type: ignore[arg-type]

    with pytest.raises(_log.LogFormatError, match="does not know") as caught:
        _log.parse(event)

    assert ("stream_chunk", None) == (caught.value.event_type, caught.value.key)


def test_a_typed_parser_refuses_an_event_of_another_type() -> None:
    """`StepStarted.of` on a step_completed is an error, not a misread."""
    event, _ = EXAMPLES[EventType.STEP_COMPLETED]

    with pytest.raises(_log.LogFormatError, match="is not a step_started event"):
        _log.StepStarted.of(event)


def test_defaults_of_optional_keys() -> None:
    """Absent optional keys read as the log meant without them."""
    bare = {
        EventType.RUN_CREATED: {"workflow": "wf"},
        EventType.RUN_STARTED: {},
        EventType.SLEEP_COMPLETED: {},
        EventType.HOOK_CREATED: {"token": "t", "name": "h"},
        EventType.RUN_COMPLETED: {},
    }
    parsed = [_log.parse(Event("r1", 2, kind, "c#1", data, T0)) for kind, data in bare.items()]

    assert [
        _log.RunCreated("wf", None, None),
        _log.RunStarted(None),
        _log.SleepCompleted("c#1", cancelled=False),
        _log.HookCreated("c#1", "t", "h", "hook", None, None, None),
        _log.RunCompleted(None),
    ] == parsed


def test_times_are_read_as_aware_utc() -> None:
    """A wake time written with another offset, or none, reads as the same instant in UTC."""
    paris = datetime(2030, 1, 1, 11, tzinfo=timezone(timedelta(hours=1))).isoformat()
    naive = "2030-01-01T10:00:00"

    for text in (paris, naive):
        event = Event("r1", 3, EventType.SLEEP_STARTED, "sleep#1", {"wake_at": text}, T0)
        wake_at = _log.SleepStarted.of(event).wake_at
        assert datetime(2030, 1, 1, 10, tzinfo=UTC) == wake_at
        assert UTC == wake_at.tzinfo


def test_parsed_entries_are_frozen() -> None:
    """A reader cannot change the log through what it parsed."""
    entry = _log.parse(EXAMPLES[EventType.STEP_STARTED][0])

    with pytest.raises(AttributeError):
        entry.attempt = 2  # type: ignore[misc,union-attr]


def test_the_log_module_imports_only_the_standard_library_records_and_errors() -> None:
    """The replay core imports perdure._log, so it must stay below everything else."""
    import ast  # noqa: PLC0415
    import sys  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    tree = ast.parse(Path(_log.__file__).read_text())
    imported = {
        node.module if isinstance(node, ast.ImportFrom) else alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.Import | ast.ImportFrom)
        for alias in node.names
    }
    ours = {name for name in imported if name and name.split(".")[0] == "perdure"}
    others = {name for name in imported if name and name not in ours and name != "__future__"}

    assert {"perdure._records", "perdure._errors"} == ours
    assert all(name.split(".")[0] in sys.stdlib_module_names for name in others), others


def test_a_stored_type_this_release_does_not_know_is_a_log_format_error() -> None:
    """A store reading a row of a later release's event type says which run and event."""
    assert EventType.STEP_STARTED is _log.event_type("step_started", run_id="r1", seq=3)

    with pytest.raises(_log.LogFormatError, match="run 'r1', event #3 \\(stream_chunk\\)"):
        _log.event_type("stream_chunk", run_id="r1", seq=3)


def test_a_forks_run_created_names_the_run_it_was_forked_from() -> None:
    """``forked_from`` is an optional key: a fork writes it, other runs leave it out."""
    fork = _log.run_created(workflow="wf", input=None, version="v2", forked_from="r1")
    assert fork.data["forked_from"] == "r1"
    assert _log.RunCreated.of(fork) == _log.RunCreated("wf", None, "v2", "r1")
    plain = _log.run_created(workflow="wf", input=None, version="v2")
    assert "forked_from" not in plain.data
    assert _log.RunCreated.of(plain).forked_from is None
