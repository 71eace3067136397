"""What a run actor and a queue runner need of the worker that owns them, and no more.

The `Worker` is the only host there is, but the actor and the queue runner are written
against these protocols rather than against it: what each may touch is listed here, in
one place, and neither imports the worker. So imports inside the package go one way:
the worker imports the actor and the queue runner, the actor imports the queue runner's
`outcome_events`, and all of them import only this module, ``_attempts``, ``_lease``
and ``_outage`` besides. Counters are the worker's: a component tells it what happened
(`RunHost.replayed`, `RunHost.evict`, `RunHost.run_finished`) and the worker counts.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from perdure.stores._protocol import FlowStore, LogStore, QueueStore, RunStore, StreamStore

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from perdure._clock import Clock
    from perdure._records import NewEvent
    from perdure._runtime._attempts import StepAttempts

__all__ = ["ActorStore", "HeldRun", "QueueHost", "QueueRunnerStore", "RunHost"]


class ActorStore(LogStore, StreamStore, RunStore, FlowStore, Protocol):
    """What a run actor uses of the store: its log, its streams, the runs it starts.

    Runs: it creates its child runs (held to their workflow's concurrency limit), and
    asks for their cancel when it is cancelled.
    """


class HeldRun(Protocol):
    """A run in a host's memory, as the host sees it."""

    @property
    def run_id(self) -> str:
        """The run's id."""

    def drop(self) -> None:
        """Forget the run in this process; the store keeps it."""

    def inbox_read(self) -> None:
        """The host has handed the run everything its inbox held once the run was ready."""


class RunHost(Protocol):
    """The worker, as the `RunActor` of a run it holds sees it."""

    @property
    def id(self) -> str:
        """The worker's id: every write for a held run is fenced by it."""

    @property
    def store(self) -> ActorStore:
        """Where the run's log is: the actor reads it to replay and appends to it."""

    @property
    def clock(self) -> Clock:
        """The worker's clock (a fake one in tests)."""

    @property
    def attempts(self) -> StepAttempts:
        """Runs step attempts in the worker's step slots."""

    @property
    def draining(self) -> bool:
        """Whether the worker is stopping: workflows start no new steps."""

    @property
    def evict_after(self) -> timedelta:
        """How long a run waits on nothing but the outside world before it is evicted."""

    def poke(self) -> None:
        """Something may have changed: the worker makes a pass soon."""

    def ready(self, run: HeldRun) -> None:
        """The run has begun: the next pass hands it its inbox, then `HeldRun.inbox_read`."""

    def maybe_idle(self) -> None:
        """The actor may have nothing left to do but wait (for the fake clock, the drain)."""

    def progressed(self) -> None:
        """The run's log grew (waiters in this process may want to look)."""

    def replayed(self) -> None:
        """The run was brought back from its log (after a crash, restart or eviction)."""

    def awaits_remote(self, run: HeldRun) -> None:
        """The run awaits a step that a queue's workers run: the worker looks for its outcome."""

    def hand_back(self, run: HeldRun) -> None:
        """The store failed: drop the run and release it, due at once, for a retry."""

    def evict(self, run: HeldRun, wake_at: datetime) -> None:
        """Drop a suspended run to free memory and release it, due at ``wake_at``."""

    def forget(self, run: HeldRun) -> None:
        """The run is gone from this process (ended, evicted or lost)."""

    def run_finished(self, run_id: str, terminal: NewEvent) -> None:
        """The run ended here: ``terminal``, its last event, is committed."""


class QueueRunnerStore(QueueStore, RunStore, Protocol):
    """The roles the queue runner uses: its tasks, and the runs they belong to."""


class QueueHost(Protocol):
    """The worker, as the `QueueRunner` that runs its queues' step tasks sees it."""

    @property
    def id(self) -> str:
        """The worker's id: it claims and finishes step tasks under it."""

    @property
    def store(self) -> QueueRunnerStore:
        """Where the step tasks are."""

    @property
    def clock(self) -> Clock:
        """The worker's clock (a fake one in tests)."""

    @property
    def attempts(self) -> StepAttempts:
        """Runs step attempts in the worker's step slots."""

    def poke(self) -> None:
        """Something may have changed: the worker makes a pass soon."""

    def maybe_idle(self) -> None:
        """The runner may have nothing left to do but wait (for the fake clock, the drain)."""
