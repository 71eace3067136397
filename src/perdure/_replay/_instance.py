"""One workflow run in memory: its coroutine, its loop, and its durable calls.

The instance is driven by *activations*: `start`, then one `deliver` per outcome (a
step's result, a timer, a hook payload), each at the time that outcome was logged.
Each activation runs the workflow until it blocks and returns the commands it emitted.
It knows nothing of stores or workers; the worker and the replayer drive it the same way.

Correlation ids are given when a durable call is *made*: the call's name plus a
per-name counter (``summarize#2``). Calls are made in a deterministic order (the loop
is deterministic), so the ids are the same on replay whatever order the calls finished
in the first time.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import uuid
from collections import deque
from collections.abc import Callable, Coroutine, Generator, Mapping
from datetime import UTC, datetime
from random import Random
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from perdure._errors import FatalError, HookConflictError, HookPayloadError
from perdure._replay._commands import (
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
    TimerFired,
    WriteStream,
)
from perdure._replay._failures import error_from_record, error_record
from perdure._replay._loop import WorkflowLoop, running_owner
from perdure._replay._specs import StepSpec, WorkflowSpec

__all__ = [
    "WEBHOOK",
    "HookStream",
    "WorkflowInstance",
    "child_run_id",
    "current_instance",
    "surfaced",
]

_T = TypeVar("_T")

WEBHOOK = "webhook"
"""The kind (and name) of hooks made by `create_webhook`, whose tokens are random."""

# Shared, immutable stand-ins for containers most runs never fill.
_NO_TOKENS: Mapping[str, str] = MappingProxyType({})
_SURFACED = "__perdure_step_error__"
"""The mark (in its ``__dict__``) of a step's error rebuilt and raised in a workflow: it
fails a run whatever its type, as a step's error always has; only the workflow's own
errors may block it. (Exceptions take no weak references, so no WeakSet.)"""

_NO_HOOKS: Mapping[str, _Inlet] = MappingProxyType({})


@functools.lru_cache(maxsize=4096)
def _correlation_id(name: str, count: int) -> str:
    """``name#count``, one string shared by every run that makes that call.

    A run in memory holds the id of each call it waits on (in the instance, the actor
    and its timer), and the key of each of its counters (``name#0``): the first calls
    of a workflow are the same in all of its runs, and a worker may hold a hundred
    thousand of them.
    """
    return f"{name}#{count}"


def surfaced(error: BaseException) -> BaseException:
    """Mark an error raised in a workflow as another's (a step's, a child run's).

    Such an error fails the run whatever its type, when uncaught: only the workflow's
    own errors may block it (``block_on``).
    """
    vars(error)[_SURFACED] = True
    return error


def child_run_id(parent_id: str, correlation_id: str) -> str:
    """The id of the child run a parent's call ``correlation_id`` starts.

    Derived, not random: a replay, or a worker taking the parent over after a crash,
    makes the same call and so names the same child, which a store creates only once.
    A hash rather than the two ids joined: as short as any run id, whatever the depth
    of the tree, and safe in a URL (a correlation id holds ``#``).
    """
    digest = hashlib.sha256(f"{parent_id}/{correlation_id}".encode()).hexdigest()
    return digest[:32]


def current_instance() -> WorkflowInstance | None:
    """The workflow instance whose code is running now, if any."""
    owner = running_owner()
    return owner if isinstance(owner, WorkflowInstance) else None


# -- hooks as the workflow sees them ------------------------------------------------


class _Unreadable:
    """In place of a payload that could not be read back: its await raises this error."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


class _Inlet:
    """The instance's end of a hook: where it drops payloads for the workflow to read.

    Apart from the `HookStream` so that the instance feeds hooks through methods meant
    for it, while the stream, which users hold, shows them nothing but its reading side.
    """

    __slots__ = ("error", "payloads", "token", "waiter")

    def __init__(self, token: str) -> None:
        self.token = token
        self.payloads: deque[Any] = deque()
        self.error: BaseException | None = None
        self.waiter: asyncio.Future[None] | None = None

    def push(self, payload: Any) -> None:
        """A payload came: the workflow reads it next."""
        self.payloads.append(payload)
        self.wake()

    def fail(self, error: BaseException) -> None:
        """The hook cannot be had: the workflow's next read raises ``error``."""
        self.error = error
        self.wake()

    def wake(self) -> None:
        """Wake the workflow if it waits on the hook."""
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)


class HookStream(Generic[_T]):
    """The workflow's side of a hook: await it for one payload, iterate it for many.

    Awaiting gives the first payload and disposes the hook (its token is free again);
    iterating keeps it live until `dispose` or the end of the run.
    """

    def __init__(
        self,
        instance: WorkflowInstance,
        correlation_id: str,
        token: str,
        decode: Callable[[Any], _T],
        inlet: _Inlet,
    ) -> None:
        self._instance = instance
        self.correlation_id = correlation_id
        self.token = token
        self._decode = decode
        self._inlet = inlet
        self._disposed = False

    async def next(self) -> _T:
        """Wait for the next payload and return it, decoded to the hook's schema.

        Raises:
            HookPayloadError: the payload does not decode to the hook's type; it is
                consumed, and the next call waits for the next payload.
        """
        inlet = self._inlet
        while not inlet.payloads:
            if inlet.error is not None:
                raise inlet.error
            if self._disposed:
                raise StopAsyncIteration
            inlet.waiter = self._instance.loop.create_future()
            await inlet.waiter
        payload = inlet.payloads.popleft()
        if isinstance(payload, _Unreadable):
            raise HookPayloadError(
                f"hook token {self.token!r}: {payload.message}", token=self.token
            )
        try:
            return self._decode(payload)
        except (TypeError, ValueError) as exc:
            # The workflow's own error, at its await, not the run's end: deterministic
            # (the same payload and code decode the same on replay), so it may catch it.
            raise HookPayloadError(f"hook token {self.token!r}: {exc}", token=self.token) from None

    def dispose(self) -> None:
        """Stop accepting payloads; the token may be used by another hook."""
        if not self._disposed:
            self._disposed = True
            self._instance.dispose_hook(self.correlation_id, self.token)
            self._inlet.wake()

    def __aiter__(self) -> HookStream[_T]:
        return self

    async def __anext__(self) -> _T:
        return await self.next()

    def __await__(self) -> Generator[Any, None, _T]:
        return self._first().__await__()

    async def _first(self) -> _T:
        try:
            return await self.next()
        finally:
            self.dispose()

    async def __aenter__(self) -> HookStream[_T]:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.dispose()


# -- the instance -------------------------------------------------------------------


class _Patches:
    """A run's patches: the markers its log holds, its logged calls, the answers given."""

    __slots__ = ("answers", "calls", "logged")

    def __init__(self, logged: frozenset[str], calls: int) -> None:
        self.logged = logged
        self.calls = calls
        self.answers: dict[str, bool] = {}


_Pending = asyncio.Future[Any] | tuple[asyncio.Future[Any], StepSpec] | asyncio.TimerHandle
"""What a durable call waits on: a sleep's future; a step's future and spec (which
decodes its result); or an asyncio timer (``asyncio.sleep``, ``wait_for``) made durable.
No wrapper object: a sleeping run holds one of these for as long as it sleeps."""


class WorkflowInstance:
    """A run's workflow coroutine, stepped by activations.

    A worker may hold a hundred thousand of these while their runs sleep, so an
    instance keeps little: slots, containers made on first use (most runs create no
    hook, no asyncio timer, and draw no random number), and nothing the coroutine no
    longer needs once started (its decoded arguments).
    """

    __slots__ = (
        "_attribute_calls",
        "_call",
        "_calls",
        "_commands",
        "_hooks",
        "_logged_tokens",
        "_main",
        "_now",
        "_patches",
        "_rng",
        "_streams",
        "_timer_ids",
        "cancelling",
        "finished",
        "loop",
        "run_id",
        "spec",
        "started_at",
    )

    def __init__(
        self,
        spec: WorkflowSpec,
        run_id: str,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        *,
        started_at: datetime,
    ) -> None:
        self.spec = spec
        self.run_id = run_id
        self.started_at = started_at
        # typeshed marks the loop's I/O methods abstract; asyncio does not enforce it,
        # and WorkflowLoop leaves them out on purpose (workflows do no I/O).
        self.loop = WorkflowLoop(self)  # type: ignore[abstract]
        self._call: tuple[tuple[Any, ...], dict[str, Any]] | None = (args, kwargs)
        """The workflow's arguments, until `start` hands them to its coroutine."""
        self._now = started_at
        self._calls: dict[str, int | _Pending] = {}
        """The durable calls, two kinds of entry in one dict (a sleeping run holds one
        small dict rather than two): under ``name#0``, how many calls of ``name`` were
        made; under a call's correlation id ``name#n``, what it waits on, until its
        outcome is delivered. Calls are numbered from 1, so the two never meet."""
        self._hooks: dict[str, _Inlet] | None = None
        self._logged_tokens: Mapping[str, str] = _NO_TOKENS
        self._timer_ids: dict[asyncio.TimerHandle, str] | None = None
        self._commands: list[Command] | None = None
        self._rng: Random | None = None
        """Made on first use: its state is 2.5 KB, and most workflows never draw."""
        self._patches: _Patches | None = None
        """What `patched` answered and what the log holds; made on first use."""
        self._attribute_calls = 0
        """How many times the workflow called `set_attributes` (numbered apart from the
        durable calls, whose count `patched` reads)."""
        self._streams: dict[str, int] | None = None
        """Writes to each durable stream so far (`write_stream`); made on first use."""
        self._main: asyncio.Task[Any] | None = None
        self.cancelling = False
        self.finished = False

    # -- the deterministic stand-ins ----------------------------------------------

    def now(self) -> datetime:
        """The run's logical time: when the outcome being handled was logged."""
        return self._now

    def random(self) -> float:
        """A float in [0, 1) from the run's own seeded generator."""
        return self._generator().random()

    def uuid4(self) -> uuid.UUID:
        """A version-4 UUID from the run's own seeded generator."""
        return uuid.UUID(int=self._generator().getrandbits(128), version=4)

    def _generator(self) -> Random:
        # Seeded by the run id alone, so making it late draws the same numbers.
        rng = self._rng
        if rng is None:
            seed = int.from_bytes(hashlib.sha256(self.run_id.encode()).digest()[:8], "big")
            rng = self._rng = Random(seed)
        return rng

    # -- activations --------------------------------------------------------------

    def start(self, at: datetime) -> list[Command]:
        """Start the workflow coroutine and run it until it blocks."""
        self._now = at
        assert self._call is not None  # noqa: S101 (an instance is started once)
        args, kwargs = self._call
        self._call = None
        coro: Coroutine[Any, Any, Any] = self.spec.fn(*args, **kwargs)
        # Named after the workflow, a string every run shares (the run id is in the
        # loop's error messages): a name per run would cost ~90 bytes per held run.
        self._main = self.loop.create_untracked_task(coro, name=self.spec.name)
        return self._run()

    def has_hook(self, cid: str) -> bool:
        """Whether the workflow created a hook of this correlation id: may it take a payload."""
        return self._hooks is not None and cid in self._hooks

    def deliver(self, completion: Completion, at: datetime) -> list[Command]:  # noqa: PLR0912 (one branch per kind)
        """Hand the workflow one outcome and run it until it blocks again.

        Raises:
            KeyError: the workflow has no call with that correlation id (the replayer
                turns this into a NonDeterminismError).
        """
        self._now = at
        cid = completion.correlation_id
        if isinstance(completion, HookPayload | HookRejected):
            inlet = (self._hooks or _NO_HOOKS)[cid]
            if isinstance(completion, HookPayload):
                unread = completion.error
                inlet.push(completion.payload if unread is None else _Unreadable(unread))
            else:
                inlet.fail(HookConflictError(completion.error, token=inlet.token))
            return self._run()
        pending = self._take_call(cid)
        if isinstance(completion, ChildDone):
            # The handle (`perdure.start_child`) decodes it, with the child's own codec.
            future = pending[0] if isinstance(pending, tuple) else pending
            assert isinstance(future, asyncio.Future)  # noqa: S101 (a child's call is a future)
            if not future.done():
                future.set_result(completion)
            return self._run()
        if isinstance(completion, TimerFired):
            if isinstance(pending, asyncio.TimerHandle):
                if self._timer_ids is not None:
                    self._timer_ids.pop(pending, None)
                self.loop.fire(pending)
                return self._run()
            future = pending[0] if isinstance(pending, tuple) else pending
            if not future.done():
                future.set_result(None)
            return self._run()
        assert isinstance(pending, tuple)  # noqa: S101 (a step's outcome goes to a step)
        future, spec = pending
        if not future.done():
            if isinstance(completion, StepDone):
                try:
                    future.set_result(spec.codec.decode_result(completion.output))
                except TypeError as exc:
                    future.set_exception(exc)
            else:
                context = f"step {cid}, attempt {completion.attempt}"
                error = error_from_record(completion.error, context=context)
                vars(error)[_SURFACED] = True  # the step's error, not the workflow's own
                future.set_exception(error)
        return self._run()

    def _take_call(self, cid: str) -> _Pending:
        """Forget the call ``cid`` and return what it waited on (KeyError: no such call)."""
        pending = self._calls.get(cid)
        if pending is None or isinstance(pending, int):
            raise KeyError(cid)
        del self._calls[cid]
        return pending

    def cancel(self, at: datetime) -> list[Command]:
        """Raise CancelledError in the workflow at its current await, and unwind it.

        A workflow may run ``finally`` blocks, but durable calls made while cancelling
        fail at once: the run is ending.
        """
        self._now = at
        self.cancelling = True
        for _ in range(3):  # a workflow that swallows the first cancel gets more
            if self._main is None or self._main.done():
                break
            self._main.cancel()
            self.loop.run_until_idle()
        self._command(CancelRun())
        self.finished = True
        self.loop.close()
        return self._take_commands()

    def discard(self) -> None:
        """Unwind the coroutine now, because its run leaves this process's memory.

        Python runs a dropped coroutine's ``finally`` blocks whenever it is garbage
        collected; unwinding here instead makes that happen at a known moment, with
        durable calls refused (they raise CancelledError). Code in a workflow's
        ``finally`` may therefore run once more per eviction: keep side effects in steps.
        """
        if self.finished and self.loop.is_closed():
            return
        self.cancelling = True
        self.finished = True
        for _ in range(3):
            if self._main is None or self._main.done():
                break
            self._main.cancel()
            self.loop.run_until_idle()
        self.loop.close()

    def _run(self) -> list[Command]:
        self.loop.run_until_idle()
        main = self._main
        if main is not None and main.done() and not self.finished:
            self.finished = True
            self._command(self._outcome(main))
            self.loop.close()
        return self._take_commands()

    def _outcome(self, main: asyncio.Task[Any]) -> Command:
        if main.cancelled():
            return CancelRun()
        error = main.exception()
        if error is None:
            try:
                return CompleteRun(self.spec.codec.encode_result(main.result()))
            except TypeError as exc:  # a result perdure cannot store: the run fails
                return FailRun(error_record(exc))
        if (
            isinstance(error, self.spec.block_on)
            and not isinstance(error, FatalError)
            and not vars(error).get(_SURFACED)
        ):
            record = error_record(error)
            return BlockRun(
                f"the workflow's code raised {record['type']} (one of its block_on errors, "
                f"so the run is blocked, not failed; deploy the fix and it continues):\n"
                f"{record['traceback']}"
            )
        return FailRun(error_record(error))

    def write_stream(self, stream: str, value: Any, *, close: bool = False) -> None:
        """The workflow body writes ``value`` (encoded) to a durable stream, or closes it.

        The n-th write to a stream is ``stream:NAME#n`` (``stream_written``): a replay
        finds the writes its log holds by that id, and logs them no more.
        """
        if self.finished:
            return
        streams = self._streams
        if streams is None:
            streams = self._streams = {}
        made = streams[stream] = streams.get(stream, 0) + 1
        self._command(WriteStream(_correlation_id(f"stream:{stream}", made), stream, value, close))

    def _command(self, command: Command) -> None:
        if self._commands is None:
            self._commands = [command]
        else:
            self._commands.append(command)

    def _take_commands(self) -> list[Command]:
        commands, self._commands = self._commands, None
        return [] if commands is None else commands

    # -- durable calls, made from workflow code -----------------------------------

    def _next_id(self, name: str) -> str:
        if self.cancelling or self.finished:
            raise asyncio.CancelledError
        key = _correlation_id(name, 0)
        made = self._calls.get(key, 0)
        assert isinstance(made, int)  # noqa: S101 (a count is kept under call number 0)
        self._calls[key] = made + 1
        return _correlation_id(name, made + 1)

    def call_step(self, spec: StepSpec, input_: Any) -> asyncio.Future[Any]:
        """Schedule a step; the future resolves with its decoded result or error."""
        cid = self._next_id(spec.name)
        future = self.loop.create_future()
        self._calls[cid] = (future, spec)
        self._command(ScheduleStep(cid, spec, input_))
        return future

    def start_child(
        self, spec: WorkflowSpec, input_: Any, *, run_id: str | None, detached: bool
    ) -> tuple[str, asyncio.Future[ChildDone]]:
        """Start a child run of ``spec``; the future resolves with how it ended.

        Its id is the one the log holds for this call on replay; else ``run_id`` when
        the workflow names one, else derived from this run's id and the call's
        correlation id (`child_run_id`).
        """
        cid = self._next_id(f"child.{spec.name}")
        logged = self._logged_tokens.get(cid) if self._logged_tokens else None
        child_id = logged or run_id or child_run_id(self.run_id, cid)
        future: asyncio.Future[ChildDone] = self.loop.create_future()
        self._calls[cid] = future
        self._command(StartChild(cid, spec, input_, child_id, detached))
        return child_id, future

    def start_timer(self, wake_at: datetime) -> tuple[str, asyncio.Future[None]]:
        """Start a durable timer for `perdure.sleep`."""
        cid = self._next_id("sleep")
        future: asyncio.Future[None] = self.loop.create_future()
        self._calls[cid] = future
        self._command(StartTimer(cid, wake_at))
        return cid, future

    def cancel_timer(self, cid: str) -> None:
        """Forget a timer the workflow stopped waiting for."""
        if self._calls.pop(cid, None) is not None and not self.finished:
            self._command(CancelTimer(cid))

    def start_loop_timer(self, handle: asyncio.TimerHandle) -> None:
        """Make an asyncio timer (``asyncio.sleep``, ``wait_for``) in the workflow durable."""
        cid = self._next_id("timer")
        self._calls[cid] = handle
        if self._timer_ids is None:
            self._timer_ids = {}
        self._timer_ids[handle] = cid
        self._command(StartTimer(cid, datetime.fromtimestamp(handle.when(), UTC)))

    def cancel_loop_timer(self, handle: asyncio.TimerHandle) -> None:
        """Forget the durable timer of an asyncio timer the workflow cancelled."""
        if self._timer_ids is None:
            return
        cid = self._timer_ids.pop(handle, None)
        if cid is not None:
            self.cancel_timer(cid)

    def create_hook(
        self,
        name: str,
        token: str,
        kind: str,
        decode: Callable[[Any], _T],
        *,
        respond_with: int | None = None,
        body: Any = None,
        schema: dict[str, Any] | None = None,
        stream_type: type[HookStream[Any]] = HookStream,
    ) -> HookStream[_T]:
        """Register a hook under ``token``; payloads arrive through the stream.

        A webhook's token is random, not derived from the run: on replay the token the
        log recorded for this call replaces the fresh one, so the workflow sees (and
        may pass on) the same token as in its first life. ``respond_with``, ``body``
        (a webhook's answer) and ``schema`` (a hook's payload schema) go into the
        ``hook_created`` event; ``stream_type`` is the stream's class (a subclass of
        `HookStream` taking the same arguments).
        """
        cid = self._next_id(f"hook.{name}")
        if kind == WEBHOOK:
            token = self._logged_tokens.get(cid, token)
        inlet = _Inlet(token)
        stream: HookStream[_T] = stream_type(self, cid, token, decode, inlet)
        if self._hooks is None:
            self._hooks = {}
        self._hooks[cid] = inlet
        self._command(CreateHook(cid, token, name, kind, respond_with, body, schema))
        return stream

    def use_logged_tokens(self, tokens: dict[str, str]) -> None:
        """Give webhooks created again on replay the tokens the log holds (by call id)."""
        self._logged_tokens = dict(tokens) if tokens else _NO_TOKENS

    def use_logged_children(self, children: dict[str, str]) -> None:
        """Give child runs started again on replay the ids the log holds (by call id).

        The log rules: a fork's derived ids would differ from its original's, and a
        workflow may have changed how it names a child since. Kept with the webhooks'
        tokens, in one map by call id (``hook.`` and ``child.`` ids never meet).
        """
        if children:
            self._logged_tokens = {**self._logged_tokens, **children}

    def use_logged_patches(self, patches: set[str], calls: int) -> None:
        """Before a replay: the patches the log marked, and how many durable calls it holds.

        `patched` needs both at once, in the middle of an activation, before the
        replayer sees the calls the activation makes.
        """
        if patches or calls:
            self._patches = _Patches(frozenset(patches), calls)

    def patched(self, patch_id: str) -> bool:
        """Whether this run takes the new branch of the patch ``patch_id`` (Temporal's rule).

        A run whose log marked the patch: yes. A run replayed at a point its log shows
        it passed (it holds durable calls beyond the ones made so far) with no marker:
        no, its first life ran the old code there. Otherwise the run is live at this
        point: yes, and the marker is logged. The answer is kept per patch id, so
        asking again (in a loop) answers the same and logs nothing more.
        """
        if self.cancelling or self.finished:
            raise asyncio.CancelledError
        patches = self._patches
        if patches is None:
            patches = self._patches = _Patches(frozenset(), 0)
        answer = patches.answers.get(patch_id)
        if answer is not None:
            return answer
        if patch_id in patches.logged:
            answer = True
        elif self._made() < patches.calls:
            answer = False
        else:
            answer = True
            self._command(MarkPatch(_correlation_id(f"patch.{patch_id}", 1), patch_id))
        patches.answers[patch_id] = answer
        return answer

    def set_attributes(self, values: dict[str, Any]) -> None:
        """Record attributes on the run (``attributes_set``); see `perdure.set_attributes`.

        The n-th call is ``attributes#n``: a replay finds the calls its log holds by
        that id, and logs them no more.
        """
        if self.cancelling or self.finished:
            raise asyncio.CancelledError
        self._attribute_calls += 1
        cid = _correlation_id("attributes", self._attribute_calls)
        self._command(SetAttributes(cid, values))

    def _made(self) -> int:
        """How many durable calls (steps, sleeps, timers, hooks) the workflow has made."""
        return sum(count for count in self._calls.values() if isinstance(count, int))

    def dispose_hook(self, correlation_id: str, token: str) -> None:
        """The workflow stopped accepting payloads for a hook."""
        if not self.finished:
            self._command(DisposeHook(correlation_id, token))
