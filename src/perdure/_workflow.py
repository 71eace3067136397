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

from perdure._attributes import AttributeValue, check_attributes
from perdure._deadlines import checked_timeout
from perdure._errors import WorkflowCancelled, WorkflowFailed
from perdure._flow import Limit, Rate
from perdure._replay import (
    ChildDone,
    Duration,
    RetryPolicy,
    StepSpec,
    WorkflowInstance,
    WorkflowSpec,
    current_instance,
    parse_duration,
    surfaced,
)
from perdure._schedules import declare
from perdure._serde import CallCodec

__all__ = [
    "ChildRun",
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
    "set_attributes",
    "sleep",
    "start_child",
    "step",
    "uuid4",
    "workflow",
]

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

_RESERVED_NAMES = ("sleep", "timer")
_RESERVED_PREFIXES = ("hook.", "child.")
"""Correlation ids of hooks and child runs begin so; a step's name may not."""


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


def set_attributes(**values: AttributeValue) -> None:
    """Attach searchable attributes to the run: business keys to find it by.

    ::

        perdure.set_attributes(customer="acme", tier="gold", items=3)

    Each value is a str, int, float or bool; setting a key again replaces its value.
    They are logged (``attributes_set``; a replay does not log them again), shown with
    the run by ``perdure show``, ``perdure runs``, the HTTP API and the dashboard, and
    searched by ``engine.list_runs(attributes={"customer": "acme"})``, ``perdure runs
    --attr customer=acme`` and ``GET /runs?attr=customer:acme``. A search compares text,
    so ``items=3`` finds the int 3 and the string "3".

    Raises:
        RuntimeError: outside a workflow.
        TypeError: a value that is not a str, int, float or bool (a nested value, None),
            naming the key; nothing is recorded.
        ValueError: a key that is not an identifier, a float that is not finite, or a
            string over 1000 characters; nothing is recorded.
    """
    instance = _in_workflow()
    if instance is None:
        raise RuntimeError("set_attributes() must be called inside a workflow")
    checked = check_attributes(values, what=f"set_attributes() in workflow {instance.spec.name!r}")
    if checked:
        instance.set_attributes(checked)


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
        if _in_workflow() is not None:  # a child run, awaited like a step
            return _call_child(self, args, kwargs)
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


# -- child runs ---------------------------------------------------------------------


class ChildRun(Generic[R_co]):
    """A child run, as the workflow that started it sees it (`start_child`).

    Attributes:
        id: the child's run id (`Engine.get_run` finds it; its record names this run
            as ``parent_id``).
        workflow: the child's workflow name.
        detached: whether it outlives a cancel of its parent.
    """

    __slots__ = ("_future", "_spec", "detached", "id", "workflow")

    def __init__(
        self,
        spec: WorkflowSpec,
        run_id: str,
        future: asyncio.Future[ChildDone],
        *,
        detached: bool,
    ) -> None:
        self._spec = spec
        self._future = future
        self.id = run_id
        self.workflow = spec.name
        self.detached = detached

    def __repr__(self) -> str:
        return f"<ChildRun {self.id} of {self.workflow!r}>"

    async def result(self) -> R_co:
        """Wait for the child to end and return what it returned; durable, like a step.

        The end is read from the parent's log (``child_completed``), so a replay of the
        parent gets the same answer without asking the child again. Awaiting it again,
        or after an ``asyncio.wait_for`` around it gave up, waits for the same end.

        Raises:
            WorkflowFailed: the child failed; with its error's type, message, traceback
                and the child's ``run_id``. Uncaught, it fails this run too.
            WorkflowCancelled: the child was cancelled.
        """
        done = await asyncio.shield(self._future)
        if done.status == "completed":
            value: R_co = self._spec.codec.decode_result(done.output)
            return value
        if done.status == "cancelled":
            reason = (done.error or {}).get("message")  # its deadline's, say
            raise surfaced(WorkflowCancelled(done.run_id, reason))
        error = done.error or {}
        raise surfaced(
            WorkflowFailed(
                str(error.get("message", "")),
                run_id=done.run_id,
                type=str(error.get("type", "builtins.Exception")),
                traceback=error.get("traceback"),
            )
        )


async def start_child(
    fn: Workflow[P, R],
    /,
    *args: Any,
    detached: bool = False,
    run_id: str | None = None,
    **kwargs: Any,
) -> ChildRun[R]:
    """Start ``fn(*args, **kwargs)`` as a child run of the current workflow; its handle.

    The start is durable and idempotent: logged in this run's log, under an id derived
    from this run's id and the call's correlation id (or ``run_id``), so a replay or a
    crash never starts it twice. The child runs on whichever worker claims it; await
    ``handle.result()`` for its result (or just ``await fn(...)`` for both at once).
    Cancelling this run cancels the child too, and its children, unless ``detached``.

    Raises:
        TypeError: ``fn`` is not a ``@workflow``, or an argument cannot be serialized
            (nothing is logged).
        ValueError: ``run_id`` is given and is not a non-empty string.
        RuntimeError: outside a workflow (use ``engine.start`` there).
    """
    spec = getattr(fn, "__perdure_workflow__", None)
    if not isinstance(spec, WorkflowSpec):
        raise TypeError(f"start_child() needs a @workflow function, got {fn!r}")
    if run_id is not None and (not isinstance(run_id, str) or not run_id.strip()):
        raise ValueError(f"start_child(run_id=...) must be a non-empty string, got {run_id!r}")
    instance = _in_workflow()
    if instance is None:
        raise RuntimeError("start_child() must be called inside a workflow; use engine.start()")
    input_ = spec.codec.encode_args(args, kwargs)
    child_id, future = instance.start_child(spec, input_, run_id=run_id, detached=detached)
    return ChildRun(spec, child_id, future, detached=detached)


async def _call_child(fn: Workflow[P, R], args: tuple[Any, ...], kwargs: dict[str, Any]) -> R:
    """``await fn(...)`` in a workflow: an attached child run, and its result."""
    child = await start_child(fn, *args, **kwargs)
    return await child.result()


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
    schedule: str | None = None,
    concurrency: Limit | None = None,
    timeout: Duration | None = None,
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
    span = checked_timeout(timeout, what=f"@workflow(timeout=...) of {spec.name!r}")
    if span is not None:
        spec = dataclasses.replace(spec, timeout=span)
    if concurrency is not None:
        if not isinstance(concurrency, Limit):
            raise TypeError(f"@workflow(concurrency=...) takes a Limit, got {concurrency!r}")
        spec = dataclasses.replace(spec, concurrency=concurrency)
    existing = _registry.get(spec.name)
    if existing is not None and _origin(existing.fn) != _origin(fn):
        raise ValueError(
            f"workflow name {spec.name!r} is taken by {_origin(existing.fn)}; "
            f"give {_origin(fn)} another name with @workflow(name=...)"
        )
    if schedule is not None:
        _declare_schedule(spec, schedule)
    _registry[spec.name] = spec  # a re-definition (a reload) replaces the old one
    return Workflow(spec)


def _declare_schedule(spec: WorkflowSpec, schedule: str) -> None:
    """Check and record ``@workflow(schedule=...)``; workers store it when they start."""
    try:
        spec.codec.encode_args((), {})
    except TypeError:
        raise TypeError(
            f"@workflow(schedule=...) of {spec.name!r}: its runs start without arguments, "
            "so every parameter needs a default"
        ) from None
    declare(spec.name, schedule)


@overload
def workflow(fn: Callable[P, Coroutine[Any, Any, R]], /) -> Workflow[P, R]: ...
@overload
def workflow(
    *,
    name: str | None = None,
    version: str | None = None,
    block_on: tuple[type[BaseException], ...] | None = None,
    schedule: str | None = None,
    concurrency: Limit | None = None,
    timeout: Duration | None = None,
) -> _WorkflowDecorator: ...
def workflow(
    fn: Callable[..., Any] | None = None,
    /,
    *,
    name: str | None = None,
    version: str | None = None,
    block_on: tuple[type[BaseException], ...] | None = None,
    schedule: str | None = None,
    concurrency: Limit | None = None,
    timeout: Duration | None = None,
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
        schedule: a cron expression: a schedule of this workflow, stored (under the
            workflow's name) when a worker that defines it starts, and updated when
            the expression changes. Read in UTC, or in the zone it starts with:
            ``"CRON_TZ=Europe/Paris 0 9 * * MON-FRI"``. Its runs start with no
            arguments; ``engine.schedule`` offers every option.
        concurrency: a `perdure.Limit`: at most ``n`` runs per value of its key hold a
            slot at once, across all workers; the others wait as ``pending`` (README,
            "Flow control"). A run holds its slot from its first claim until it ends.
        timeout: how long a run may take (seconds, a timedelta, or text such as
            ``"1h"``): at its deadline it is cancelled, durably, its ``run_cancelled``
            saying "deadline of 1h passed" (README, "Deadlines").
            ``engine.start(..., timeout=...)`` overrides it for one run; a child run
            gets at most its parent's remaining time unless detached.
    """
    if fn is not None:
        return _make_workflow(fn, name, version)
    return functools.partial(
        _make_workflow,
        name=name,
        version=version,
        block_on=block_on,
        schedule=schedule,
        concurrency=concurrency,
        timeout=timeout,
    )


def _make_step(
    fn: Callable[..., Any],
    name: str | None,
    max_retries: int,
    timeout: Duration | None,
    queue: str | None,
    retry: RetryPolicy | None,
    concurrency: int | None = None,
    rate: str | Rate | None = None,
) -> Step[Any, Any]:
    step_name = name or fn.__qualname__
    if "#" in step_name or step_name in _RESERVED_NAMES or step_name.startswith(_RESERVED_PREFIXES):
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
    if concurrency is not None and (
        isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1
    ):
        raise ValueError(
            f"concurrency of step {step_name!r} must be an int of at least 1, got {concurrency!r}"
        )
    spec = StepSpec(
        fn=fn,
        name=step_name,
        codec=CallCodec(fn),
        retry=policy,
        timeout=seconds,
        queue=queue,
        is_async=inspect.iscoroutinefunction(fn),
        concurrency=concurrency,
        rate=_rate(rate, step_name),
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


def _rate(rate: str | Rate | None, step_name: str) -> Rate | None:
    """``@step(rate=...)`` as a `Rate`: a string is read as ``Rate(rate)``."""
    if rate is None or isinstance(rate, Rate):
        return rate
    if isinstance(rate, str):
        try:
            return Rate(rate)
        except ValueError as exc:
            raise ValueError(f"rate of step {step_name!r}: {exc}") from None
    raise TypeError(f"rate of step {step_name!r} must be a str or a perdure.Rate, got {rate!r}")


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
    concurrency: int | None = None,
    rate: str | Rate | None = None,
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
    concurrency: int | None = None,
    rate: str | Rate | None = None,
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
        concurrency: at most this many attempts of the step run at once, across all
            workers sharing the database; an attempt waits for a slot before it takes
            one of its worker's step slots.
        rate: at most so many attempts start per period, across all workers:
            ``"100/min"``, or ``perdure.Rate("100/min", key="customer_id")`` for a
            window per value of an argument (README, "Flow control").
    """
    if fn is not None:
        return _make_step(fn, name, max_retries, timeout, queue, retry, concurrency, rate)
    return functools.partial(
        _make_step,
        name=name,
        max_retries=max_retries,
        timeout=timeout,
        queue=queue,
        retry=retry,
        concurrency=concurrency,
        rate=rate,
    )
