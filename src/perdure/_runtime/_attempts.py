"""The attempt-and-retry loop of a step call, the one loop for every step.

A step runs where its run is held (`perdure._runtime._actor.RunActor`), or on a worker
serving its queue (`perdure._runtime._queues.QueueRunner`). Either way its attempts
follow the same rules: each runs in one of the worker's step slots with its metadata
in context and within its timeout; a failure is retried after the delay its retry
policy gives, and the last one is the step's error; a result that cannot be encoded
fails the step at once, since retrying would not help; an attempt past the last is
what is left of an attempt that died with its process. `StepAttempts.run` holds those
rules. What differs is where the outcomes go, and that is the caller's
`AttemptOutcomes`: the actor logs them in the run's log, the queue runner stores them
in the step task.

The worker's slots (`StepSlots`) also count the attempts that want one, in a slot or
waiting for it: the worker claims runs only as far as its slots have room for them.

No attempt begins unless the worker's lease is known to hold at that moment
(`perdure._runtime._lease.Lease`): checked once the attempt has its slot, right before
the step's code runs, since a step may wait long for a slot or out a retry's delay, and
the worker may have been paused meanwhile. While all is well that is one clock read.

The actor's step is the hot path: a trivial step must cost one append and nothing
more. So the outcomes are reported by plain method calls on an object the caller
already has (the actor reports the outcomes of all its steps, told apart by the
``call`` it passes along), and the loop adds no task, no await and no object per step
beyond the coroutine it is.
"""

from __future__ import annotations

import asyncio
import functools
from datetime import datetime, timedelta
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from perdure._metrics import recorder
from perdure._streams import finish_attempt, retry_begins, writing
from perdure._workflow import StepMetadata, WorkflowMetadata, step_context

if TYPE_CHECKING:
    from collections.abc import Callable
    from contextlib import AbstractContextManager

    from perdure._clock import Clock
    from perdure._records import JSON
    from perdure._replay import StepSpec
    from perdure._runtime._lease import Lease
    from perdure._runtime._step_limits import StepGate

__all__ = ["AttemptOutcomes", "StepAttempts", "StepSlots", "call_attempt"]

_Call_contra = TypeVar("_Call_contra", contravariant=True)
_Result_co = TypeVar("_Result_co", covariant=True)
_Call = TypeVar("_Call")
_Result = TypeVar("_Result")


class AttemptOutcomes(Protocol[_Call_contra, _Result_co]):
    """Where the attempts of step calls report, and what a finished call comes to.

    ``call`` is the caller's own handle on the step call, passed back as given: one
    object may take the outcomes of many calls.
    """

    def attempt_started(self, call: _Call_contra, attempt: int) -> None:
        """Attempt ``attempt`` begins (not called for one the caller already reported)."""

    def attempt_span(
        self, call: _Call_contra, step: StepMetadata
    ) -> AbstractContextManager[object]:
        """The tracing span around one attempt."""

    def backing_off(self, call: _Call_contra, *, waiting: bool) -> None:
        """The call starts (``waiting``) or ends waiting out a retry's delay.

        Meanwhile nothing runs: the worker is idle as far as a fake clock is concerned.
        """

    def retrying(
        self, call: _Call_contra, attempt: int, error: Exception, retry_at: datetime
    ) -> None:
        """Attempt ``attempt`` failed with ``error``; the next one starts at ``retry_at``."""

    def succeeded(self, call: _Call_contra, attempt: int, output: JSON) -> _Result_co:
        """Attempt ``attempt`` returned the encoded ``output``: the call is done."""

    def failed(self, call: _Call_contra, attempt: int, error: BaseException) -> _Result_co:
        """The call failed for good; ``error`` is that of its last attempt, ``attempt``."""

    def lost(self, call: _Call_contra, attempt: int, max_retries: int) -> Exception:
        """The error of attempt ``attempt``, which died with the process running it.

        It was the last the step's retry policy (``max_retries``) allows.
        """


class StepSlots:
    """A worker's step slots (``async with``), and how many attempts want one.

    Args:
        count: how many attempts may run at once.
        on_watch: called when an attempt leaves its slot with `wanted` at or below
            `watch`, which is then reset to -1 (so once per `watch` set).
    """

    __slots__ = ("_on_watch", "_semaphore", "wanted", "watch")

    def __init__(self, count: int, on_watch: Callable[[], None] | None = None) -> None:
        self._semaphore = asyncio.Semaphore(count)
        self._on_watch = on_watch
        self.wanted = 0
        """Attempts in a slot or waiting for one."""
        self.watch = -1
        """Set by the worker while it is short of slots: see ``on_watch``."""

    async def __aenter__(self) -> None:
        self.wanted += 1
        try:
            await self._semaphore.acquire()
        except BaseException:  # cancelled while waiting: it wants no slot any more
            self._left()
            raise

    async def __aexit__(self, *_: object) -> None:
        self._semaphore.release()
        self._left()

    def _left(self) -> None:
        self.wanted -= 1
        if self.wanted <= self.watch and self._on_watch is not None:
            self.watch = -1
            self._on_watch()


class StepAttempts:
    """Runs the attempts of step calls in a worker's step slots, on its clock.

    A worker has one, shared by the steps of the runs it holds and by the step tasks of
    the queues it serves: together they run at most ``max_concurrent`` attempts.
    ``on_watch`` is the slots' (`StepSlots`).
    """

    __slots__ = ("clock", "gate", "lease", "slots")

    def __init__(
        self,
        clock: Clock,
        max_concurrent: int,
        lease: Lease,
        on_watch: Callable[[], None] | None = None,
        gate: StepGate | None = None,
    ) -> None:
        self.clock = clock
        self.slots = StepSlots(max_concurrent, on_watch)
        self.lease = lease
        self.gate = gate
        """Where attempts of steps with limits across workers take their places
        (`perdure._runtime._step_limits`); None: such limits are not kept."""

    async def run(  # noqa: C901, PLR0912, PLR0915 (the hot path: one loop, no call more per attempt)
        self,
        outcomes: AttemptOutcomes[_Call, _Result],
        call: _Call,
        spec: StepSpec,
        correlation_id: str,
        input_: JSON,
        attempt: int,
        not_before: datetime | None,
        workflow: WorkflowMetadata,
        *,
        reported: bool = False,
    ) -> _Result:
        """Run attempt ``attempt`` of a step call and the retries it earns; its result.

        The first attempt waits until ``not_before`` when given (a retry's delay that a
        replay resumes). ``reported``: the caller already reported the first attempt's
        start. Errors decoding ``input_`` are raised: they are perdure's, not the step's.
        """
        policy = spec.retry
        if attempt > policy.max_attempts:
            lost = outcomes.lost(call, attempt - 1, policy.max_retries)
            return outcomes.failed(call, attempt - 1, lost)
        args, kwargs = spec.codec.decode_args(input_)
        clock, lease, run_id = self.clock, self.lease, workflow.run_id
        while True:
            if not_before is not None:
                outcomes.backing_off(call, waiting=True)
                try:
                    await clock.sleep_until(not_before)
                finally:
                    outcomes.backing_off(call, waiting=False)
            if not reported:
                outcomes.attempt_started(call, attempt)
            reported = False
            meta = StepMetadata(
                f"{run_id}:{correlation_id}", run_id, spec.name, attempt, clock.now()
            )
            error: Exception
            # Looked up per attempt, as tracing is: None (and no clock read) without metrics.
            metrics, began = recorder(), 0.0
            try:
                async with (
                    self.slots
                    if (spec.concurrency is None and spec.rate is None) or self.gate is None
                    else self.gate.around(
                        self.slots,
                        spec,
                        (args, kwargs),
                        f"{run_id}:{correlation_id}:{attempt}",
                        functools.partial(outcomes.backing_off, call),
                    )
                ):
                    if not lease.valid:  # the worker may have been paused: ask first
                        await lease.confirm()
                    if attempt > 1:  # what an attempt that died wrote is retracted first
                        await retry_begins(meta)
                    token = step_context.set((meta, workflow))
                    if metrics is not None:
                        began = perf_counter()
                    try:
                        with outcomes.attempt_span(call, meta):
                            value = await call_attempt(spec, args, kwargs)
                            if writing(meta):  # its chunks are stored before its result
                                await finish_attempt(meta, None)
                    except BaseException as exc:
                        if writing(meta):  # its chunks are retracted
                            await finish_attempt(meta, exc)
                        raise
                    finally:
                        step_context.reset(token)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error = exc
            else:
                try:
                    output = spec.codec.encode_result(value)
                except TypeError as exc:  # a result that cannot be stored: retrying won't help
                    if metrics is not None:
                        metrics.attempt(spec.name, "failed", perf_counter() - began, retried=False)
                    return outcomes.failed(call, attempt, exc)
                if metrics is not None:
                    metrics.attempt(spec.name, "succeeded", perf_counter() - began, retried=False)
                return outcomes.succeeded(call, attempt, output)
            failed_at = clock.now()
            delay = policy.delay_after(attempt, error, now=failed_at)
            if metrics is not None:
                ran = perf_counter() - began if began else 0.0
                metrics.attempt(spec.name, "failed", ran, retried=delay is not None)
            if delay is None:
                return outcomes.failed(call, attempt, error)
            not_before = failed_at + timedelta(seconds=delay)
            outcomes.retrying(call, attempt, error, not_before)
            attempt += 1


async def call_attempt(spec: StepSpec, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """One attempt of a step, inline or for a queue, bounded by the step's timeout.

    A plain ``def`` runs in a thread. At the deadline the attempt is cancelled; an
    attempt that passed it is a timed-out attempt whatever it did then: a body that
    catches the `asyncio.CancelledError` and returns a value, or raises another
    error, gets the same `TimeoutError` as one that let the cancellation through, and
    is retried or fails as that one is. (`asyncio.wait_for` would return such a value
    as the step's result.)
    """
    call = (
        spec.fn(*args, **kwargs) if spec.is_async else asyncio.to_thread(spec.fn, *args, **kwargs)
    )
    if spec.timeout is None:  # a deadline would only add work to every step
        return await call
    try:
        # A thread cannot be stopped: on timeout the attempt is abandoned, not killed.
        async with asyncio.timeout(spec.timeout) as deadline:
            value = await call
    except TimeoutError:
        raise
    except Exception as exc:
        if deadline.expired():
            raise TimeoutError from exc
        raise
    if deadline.expired():
        raise TimeoutError
    return value
