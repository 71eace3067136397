"""How `Run.result` learns that a run ended, without a store read when it ended here.

An Engine's worker commits the terminal event of each run it holds; the moment it has,
`RunEnds.ended` keeps that event (for the last `RECENT` runs that ended here) and wakes
whoever waits on the run. A waiter then has the outcome in hand: a one-step run's
`start` then `result` reads nothing back from the store (issue 16's eager start). A run
whose end was committed elsewhere, or that this worker let go (evicted, handed back,
lost), is read from the store as before.
"""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING

from perdure.stores._index import RunEnded, plan

if TYPE_CHECKING:
    from perdure._records import NewEvent

__all__ = ["RECENT", "RunEnds"]

RECENT = 1024
"""How many ends of runs that ended here are kept, newest last: enough for the results a
burst of starts awaits (bench c, 1,000 runs), few enough that their outputs cost little."""


class RunEnds:
    """The runs that ended in this process, and the waiters on any run's end."""

    __slots__ = ("_recent", "_waiters")

    def __init__(self) -> None:
        self._waiters: dict[str, asyncio.Event] = {}
        """For each run a `Run.result` waits on: set when it ends or is let go here, or
        at the next news from elsewhere (which may be its end in another process)."""
        self._recent: dict[str, NewEvent] = {}
        """Run id -> its terminal event, committed here; insertion order is end order."""

    def waiter(self, run_id: str) -> asyncio.Event:
        """An event set at the run's end here, its let-go, or news from elsewhere."""
        event = self._waiters.get(run_id)
        if event is None:
            event = self._waiters[run_id] = asyncio.Event()
        return event

    def ended(self, run_id: str, terminal: NewEvent | None) -> None:
        """The run ended here (``terminal`` committed), or was let go (None): wake its waiter."""
        if terminal is not None:
            recent = self._recent
            recent[run_id] = terminal
            if len(recent) > RECENT:
                del recent[next(iter(recent))]
        event = self._waiters.pop(run_id, None)
        if event is not None:
            event.set()

    def wake_all(self) -> None:
        """News from elsewhere: every waiter looks again."""
        waiters, self._waiters = self._waiters, {}
        for event in waiters.values():
            event.set()

    def outcome(self, run_id: str) -> RunEnded | None:
        """How the run ended, if it ended here recently; None otherwise (ask the store)."""
        terminal = self._recent.get(run_id)
        if terminal is None:
            return None
        # The store indexes the same event the same way: the status, output and error
        # it would have read back.
        (change,) = plan([terminal], run_id)
        if not isinstance(change, RunEnded):  # pragma: no cover - only terminal events kept
            return None
        if isinstance(change.output, (dict, list)):
            # A copy for each caller, as a store's read is: the event is shared by all.
            change.output = json.loads(json.dumps(change.output))
        return change
