"""`@workflow`, `@step` and what workflow code calls: sleep, now, random, uuid4, metadata."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import functools
import hashlib
import inspect
import random as _random
import uuid as _uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, ParamSpec, Protocol, TypeVar, overload

from perdure._replay import (
    Duration,
    RetryPolicy,
    StepSpec,
    WorkflowInstance,
    WorkflowSpec,
    current_instance,
    parse_duration,
)
from perdure._serde import CallCodec

__all__ = [
    "Step",
    "StepMetadata",
    "Workflow",
    "WorkflowMetadata",
    "deprecate_patch",
    "get_step_metadata",
    "get_workflow_metadata",
    "lookup_step",
    "lookup_workflow",
    "now",
    "patched",
    "queued_steps",
    "random",
    "registered_workflows",
    "sleep",
    "step",
    "uuid4",
    "workflow",
]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

_RESERVED_NAMES = ("sleep", "timer")


# -- metadata ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepMetadata:
    """Where a step attempt runs.

    ``step_id`` is the same for every attempt of one step call (``run_id:name#n``): use
    it as the idempotency key of calls to outside services, so a retry after a crash
    does not charge a card twice.
    """

    step_id: str
    run_id: str
    name: str
    attempt: int
    started_at: datetime


@dataclass(frozen=True, slots=True)
class WorkflowMetadata:
    """Which run the current code belongs to."""

    run_id: str
    workflow_name: str
    started_at: datetime


step_context: contextvars.ContextVar[tuple[StepMetadata, WorkflowMetadata] | None] = (
    contextvars.ContextVar("perdure_step", default=None)
)


def get_step_metadata() -> StepMetadata:
    """The step id, attempt and start time of the step attempt running now.

    Raises:
        RuntimeError: when not called from inside a step run by a workflow.
    """
    current = step_context.get()
    if current is None:
        raise RuntimeError("get_step_metadata() must be called inside a step run by a workflow")
    return current[0]


def get_workflow_metadata() -> WorkflowMetadata:
    """The run id, workflow name and start time of the run the caller belongs to.

    Works in workflow code and in steps run by a workflow.

    Raises:
        RuntimeError: outside both.
    """
    instance = current_instance()
    if instance is not None:
        return WorkflowMetadata(instance.run_id, instance.spec.name, instance.started_at)
    current = step_context.get()
    if current is None:
        raise RuntimeError("get_workflow_metadata() must be called inside a workflow or its steps")
    return current[1]


# -- the deterministic stand-ins --------------------------------------------------


def _in_workflow() -> WorkflowInstance | None:
    instance = current_instance()
    if instance is None:
        return None
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return None
    return instance if loop is instance.loop else None


def now() -> datetime:
    """The current time as an aware UTC datetime.

    In a workflow, the time recorded in its log for the moment it is at, so a replay
    sees the same time; elsewhere, the wall clock.
    """
    instance = _in_workflow()
    return instance.now() if instance is not None else datetime.now(UTC)


def random() -> float:
    """A float in [0, 1): in a workflow, from a generator seeded by the run id."""
    instance = _in_workflow()
    return instance.random() if instance is not None else _random.random()


def uuid4() -> _uuid.UUID:
    """A random UUID: in a workflow, from a generator seeded by the run id."""
    instance = _in_workflow()
    return instance.uuid4() if instance is not None else _uuid.uuid4()


def _patch_instance(patch_id: str, what: str) -> WorkflowInstance:
    if not isinstance(patch_id, str) or not patch_id or "#" in patch_id:
        raise ValueError(f"{what}() needs a non-empty patch id without '#', got {patch_id!r}")
    instance = _in_workflow()
    if instance is None:
        raise RuntimeError(f"{what}() must be called inside a workflow")
    return instance


def patched(patch_id: str) -> bool:
    """Whether this run takes the new branch of a change made while runs were in flight.

    True for a run that reaches this call on code with the patch (the first time, a
    ``patch_marked`` event records it, so its replays answer True too); False when
    replaying a run whose log shows it passed this point on code without the patch,
    so that it keeps making the durable calls its log holds::

        if perdure.patched("charge-first"):
            await charge(order_id)
            await reserve(order_id)
        else:
            await reserve(order_id)
            await charge(order_id)

    Once no run in flight can take the old branch, drop it and replace the call with
    `deprecate_patch`.

    Raises:
        RuntimeError: outside a workflow.
        ValueError: an empty id, or one containing ``#``.
    """
    return _patch_instance(patch_id, "patched").patched(patch_id)


def deprecate_patch(patch_id: str) -> None:
    """Mark where ``patched(patch_id)`` was, once its old branch is gone from the code.

    It records nothing: runs that recorded the patch still replay (their marker is
    skipped), and new runs log no marker. When no run in flight predates the patch any
    more, the call can be removed as well.

    Raises:
        RuntimeError: outside a workflow.
        ValueError: an empty id, or one containing ``#``.
    """
    _patch_instance(patch_id, "deprecate_patch")


async def sleep(duration: Duration | None = None, *, until: datetime | None = None) -> None:
    """Pause the workflow for ``duration`` or until ``until``, holding no resources.

    ``duration`` is seconds, a timedelta, or text such as ``"30s"``, ``"1h30m"`` or
    ``"7 days"``; ``until`` is an aware datetime. The wake-up is durable: it survives
    restarts and happens at the original time. Outside a workflow this is a plain
    ``asyncio.sleep``.
    """
    if (duration is None) == (until is None):
        raise TypeError("sleep() takes a duration or until=, not both or neither")
    instance = _in_workflow()
    if until is not None:
        if until.tzinfo is None:
            raise ValueError(f"sleep(until=...) needs an aware datetime, got naive {until}")
        wake_at = until.astimezone(UTC)
    else:
        assert duration is not None  # noqa: S101 (checked above)
        span = parse_duration(duration, what="sleep duration")
        wake_at = (instance.now() if instance is not None else datetime.now(UTC)) + span
    if instance is None:
        await asyncio.sleep(max(0.0, (wake_at - datetime.now(UTC)).total_seconds()))
        return
    cid, future = instance.start_timer(wake_at)
    try:
        await future
    except asyncio.CancelledError:
        instance.cancel_timer(cid)
        raise


# -- the decorators ---------------------------------------------------------------

_registry: dict[str, WorkflowSpec] = {}
_queued_steps: dict[str, StepSpec] = {}
"""Steps with a queue, by name: a queue's worker finds a step task's code here."""


def lookup_workflow(name: str) -> WorkflowSpec | None:
    """The workflow registered under ``name`` in this process, if any."""
    return _registry.get(name)


def registered_workflows() -> frozenset[str]:
    """The names of the workflows this process defines: the runs its worker can run."""
    return frozenset(_registry)


def lookup_step(name: str) -> StepSpec | None:
    """The step with a queue registered under ``name`` in this process, if any."""
    return _queued_steps.get(name)


def queued_steps(queues: frozenset[str] | None = None) -> frozenset[str]:
    """The names of the steps with a queue this process defines (for any of ``queues``)."""
    return frozenset(
        name for name, spec in _queued_steps.items() if queues is None or spec.queue in queues
    )


def _origin(fn: Callable[..., Any]) -> str:
    return f"{fn.__module__}.{fn.__qualname__}"


def _source_version(fn: Callable[..., Any]) -> str:
    try:
        text = inspect.getsource(fn)
    except (OSError, TypeError):
        text = _origin(fn)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


class Workflow(Generic[P, R_co]):
    """A durable workflow. Start it with ``engine.start(fn, ...)`` or ``perdure.start``.

    Calling it directly runs the function as a plain coroutine, without durability.
    """

    __name__: str
    __qualname__: str

    def __init__(self, spec: WorkflowSpec) -> None:
        self.__perdure_workflow__ = spec
        functools.update_wrapper(self, spec.fn)

    @property
    def name(self) -> str:
        """The name runs of this workflow are stored under."""
        return self.__perdure_workflow__.name

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Coroutine[Any, Any, R_co]:
        result: Coroutine[Any, Any, R_co] = self.__perdure_workflow__.fn(*args, **kwargs)
        return result

    def __repr__(self) -> str:
        return f"<perdure workflow {self.name!r}>"


class Step(Generic[P, R_co]):
    """A step: retried on failure, its result recorded once.

    Inside a workflow, awaiting a call schedules it durably. Anywhere else, the call
    simply runs the function (in a thread pool for a plain ``def``).
    """

    __name__: str
    __qualname__: str

    def __init__(self, spec: StepSpec) -> None:
        self.__perdure_step__ = spec
        functools.update_wrapper(self, spec.fn)

    @property
    def name(self) -> str:
        """The name used in correlation ids and the log."""
        return self.__perdure_step__.name

    async def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R_co:
        spec = self.__perdure_step__
        instance = _in_workflow()
        if instance is None:
            if spec.is_async:
                result: R_co = await spec.fn(*args, **kwargs)
                return result
            threaded: R_co = await asyncio.to_thread(spec.fn, *args, **kwargs)
            return threaded
        input_ = spec.codec.encode_args(args, kwargs)
        return await instance.call_step(spec, input_)  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        return f"<perdure step {self.name!r}>"


class _WorkflowDecorator(Protocol):
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Workflow[P, R]: ...


class _StepDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[P, Coroutine[Any, Any, R]], /) -> Step[P, R]: ...
    @overload
    def __call__(self, fn: Callable[P, R], /) -> Step[P, R]: ...


def _make_workflow(
    fn: Callable[..., Any],
    name: str | None,
    version: str | None,
    block_on: tuple[type[BaseException], ...] | None = None,
) -> Workflow[Any, Any]:
    if not inspect.iscoroutinefunction(fn):
        raise TypeError(f"@workflow needs an async def function, got {_origin(fn)}")
    if block_on is not None and not all(
        isinstance(kind, type) and issubclass(kind, BaseException) for kind in block_on
    ):
        raise TypeError(f"@workflow(block_on=...) takes exception classes, got {block_on!r}")
    spec = WorkflowSpec(
        fn=fn,
        name=name or fn.__qualname__,
        codec=CallCodec(fn),
        version=version or _source_version(fn),
    )
    if block_on is not None:
        spec = dataclasses.replace(spec, block_on=tuple(block_on))
    existing = _registry.get(spec.name)
    if existing is not None and _origin(existing.fn) != _origin(fn):
        raise ValueError(
            f"workflow name {spec.name!r} is taken by {_origin(existing.fn)}; "
            f"give {_origin(fn)} another name with @workflow(name=...)"
        )
    _registry[spec.name] = spec  # a re-definition (a reload) replaces the old one
    return Workflow(spec)


@overload
def workflow(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Workflow[P, R]: ...
@overload
def workflow(
    *,
    name: str | None = None,
    version: str | None = None,
    block_on: tuple[type[BaseException], ...] | None = None,
) -> _WorkflowDecorator: ...
def workflow(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str | None = None,
    block_on: tuple[type[BaseException], ...] | None = None,
) -> Any:
    """Make an ``async def`` function a durable workflow.

    Args:
        fn: the workflow function (when used as ``@workflow``).
        name: the name its runs are stored under; defaults to the function's qualified
            name. Keep it stable: a worker finds a run's code by this name.
        version: the code version runs record; defaults to a hash of the source. A
            worker whose version differs from the one that blocked a run tries it again.
        block_on: the errors of the workflow's own code that block its run instead of
            failing it; by default the programming errors ``(NameError,
            AttributeError, ImportError, TypeError)``, which a deploy of the fix mends.
            Any other error fails the run, and so does a step's error surfacing in
            the workflow or `FatalError`, whatever its type. ``block_on=()`` fails on
            every error.
    """
    if fn is not None:
        return _make_workflow(fn, name, version)
    return functools.partial(_make_workflow, name=name, version=version, block_on=block_on)


def _make_step(
    fn: Callable[..., Any],
    name: str | None,
    max_retries: int,
    timeout: Duration | None,
    queue: str | None,
    retry: RetryPolicy | None,
) -> Step[Any, Any]:
    step_name = name or fn.__qualname__
    if "#" in step_name or step_name in _RESERVED_NAMES or step_name.startswith("hook."):
        raise ValueError(
            f"step name {step_name!r} is reserved or contains '#'; pass @step(name=...)"
        )
    seconds: float | None = None
    if timeout is not None:
        span = parse_duration(timeout, what=f"timeout of step {step_name!r}")
        seconds = span.total_seconds()
        if seconds <= 0:
            raise ValueError(f"timeout of step {step_name!r} must be positive")
    if queue is not None and (not isinstance(queue, str) or not queue.strip()):
        raise ValueError(f"queue of step {step_name!r} must be a non-empty string, got {queue!r}")
    policy = retry if retry is not None else RetryPolicy(max_retries=max_retries)
    spec = StepSpec(
        fn=fn,
        name=step_name,
        codec=CallCodec(fn),
        retry=policy,
        timeout=seconds,
        queue=queue,
        is_async=inspect.iscoroutinefunction(fn),
    )
    if queue is not None:
        # A queue's worker finds the code of a step task by the step's name alone.
        existing = _queued_steps.get(step_name)
        if existing is not None and _origin(existing.fn) != _origin(fn):
            raise ValueError(
                f"step name {step_name!r} is taken by {_origin(existing.fn)}, another step "
                f"with a queue; give {_origin(fn)} another name with @step(name=...)"
            )
        _queued_steps[step_name] = spec  # a re-definition (a reload) replaces the old one
    return Step(spec)


@overload
def step(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Step[P, R]: ...
@overload
def step(fn: Callable[P, R], /) -> Step[P, R]: ...
@overload
def step(
    *,
    name: str | None = None,
    max_retries: int = 3,
    timeout: Duration | None = None,
    queue: str | None = None,
    retry: RetryPolicy | None = None,
) -> _StepDecorator: ...
def step(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    max_retries: int = 3,
    timeout: Duration | None = None,
    queue: str | None = None,
    retry: RetryPolicy | None = None,
) -> Any:
    """Make a function a step: retried on failure, its result recorded once.

    Args:
        fn: the step function, ``async def`` or plain ``def`` (run in a thread pool).
        name: the name in correlation ids and the log; defaults to the qualified name.
        max_retries: attempts after the first; backoff is exponential with jitter.
        timeout: seconds, a timedelta or text (``"30s"``) an attempt may take.
        queue: run the step on the workers serving this queue (``Engine(queues=...)``,
            ``perdure worker --queue``) rather than on the worker holding the run; the
            run waits (and may be evicted) meanwhile. Its name must be unique among
            steps with a queue: a queue's worker finds the code by it.
        retry: a full `RetryPolicy`, instead of ``max_retries``.
    """
    if fn is not None:
        return _make_step(fn, name, max_retries, timeout, queue, retry)
    return functools.partial(
        _make_step,
        name=name,
        max_retries=max_retries,
        timeout=timeout,
        queue=queue,
        retry=retry,
    )
