"""Flow control in `MemoryStore`: the reference `FlowStore`, in dicts.

A mixin, so the reference store's run and log code stays one read; `MemoryStore`
inherits it, calls `_flow_claimable` and `_flow_order` from its claim, and gives it its
runs, workers and change notification. What counts as a slot held is decided in
`perdure._flow`: a run of a limit key holds one from its first claim until it ends.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from perdure._flow import LimitUsage, LimitWait, RunFlow, StepGrant, StepLimits
from perdure._records import RunStatus
from perdure.stores._common import utc

if TYPE_CHECKING:
    from collections.abc import Iterable
    from datetime import datetime

    from perdure._records import Event, NewRun, RunRecord

__all__ = ["MemoryFlow", "holds_slot"]

_LIVE = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.BLOCKED})


def holds_slot(run: RunRecord) -> bool:
    """Whether a run holds a slot of its limit: claimed once, and not ended."""
    return run.status in {RunStatus.RUNNING, RunStatus.BLOCKED} or (
        run.status is RunStatus.PENDING and run.owner is not None
    )


class MemoryFlow:
    """`FlowStore` on dicts; each call is atomic on the event loop."""

    _runs: dict[str, RunRecord]
    _events: dict[str, list[Event]]
    _workers: dict[str, Any]

    def _changed(self) -> None:  # pragma: no cover - MemoryStore's own is used
        raise NotImplementedError

    async def create_run(
        self, run: NewRun, now: datetime
    ) -> tuple[RunRecord, bool]:  # pragma: no cover - MemoryStore's own is used
        raise NotImplementedError

    @property
    def _flows(self) -> dict[str, RunFlow]:
        """Each run's flow control (runs started without any have none)."""
        return self.__dict__.setdefault("_flow_of_runs", {})  # type: ignore[no-any-return]

    @property
    def _step_slots(self) -> dict[str, tuple[str, str, int]]:
        """Holder -> (step key, worker, its limit)."""
        return self.__dict__.setdefault("_flow_step_slots", {})  # type: ignore[no-any-return]

    @property
    def _step_starts(self) -> dict[str, list[tuple[datetime, int, timedelta]]]:
        """Rate key -> the starts in its window: (time, count, period)."""
        return self.__dict__.setdefault("_flow_step_starts", {})  # type: ignore[no-any-return]

    # -- runs -----------------------------------------------------------------------

    async def create_flow_run(
        self, run: NewRun, flow: RunFlow, now: datetime
    ) -> tuple[RunRecord, bool]:
        """Create a run with its flow control, or find the live run holding its dedupe key."""
        now = utc(now)
        if flow.dedupe_key is not None:
            live = self._deduped(run.workflow, flow.dedupe_key)
            if live is not None:
                return self._debounced(live, run, flow, now), False
        record, created = await self.create_run(run, now)
        if created:
            self._flows[run.id] = flow
            if flow.not_before is not None:
                record = replace(record, wake_at=utc(flow.not_before))
                self._runs[run.id] = record
        return record, created

    def _deduped(self, workflow: str, key: str) -> RunRecord | None:
        for run_id, flow in self._flows.items():
            run = self._runs.get(run_id)
            if (
                flow.dedupe_key == key
                and run is not None
                and run.workflow == workflow
                and run.status in _LIVE
            ):
                return run
        return None

    def _debounced(self, live: RunRecord, run: NewRun, flow: RunFlow, now: datetime) -> RunRecord:
        """A debounced start: the waiting run takes the new input and waits on."""
        if (
            flow.not_before is None
            or live.owner is not None
            or live.status is not RunStatus.PENDING
            or len(self._events[live.id]) != 1
        ):
            return live  # no debounce, or it began already: the dedupe key returns it
        run_input = json.loads(json.dumps(run.input))
        first = self._events[live.id][0]
        self._events[live.id][0] = replace(first, data={**first.data, "input": run_input})
        live = replace(live, input=run_input, wake_at=utc(flow.not_before), updated_at=now)
        self._runs[live.id] = live
        self._changed()
        return live

    def _flow_room(self, run: RunRecord, taken: dict[str, int]) -> bool:
        """Whether a due run may be claimed now: no limit, holding a slot, or one free."""
        flow = self._flows.get(run.id)
        if flow is None or flow.limit_key is None or flow.limit_n is None:
            return True
        if run.status is not RunStatus.PENDING:
            return True  # it holds its slot already (a recovery, a wake-up)
        key = flow.limit_key
        if key not in taken:
            taken[key] = self._used(key)
        if taken[key] >= flow.limit_n:
            return False
        taken[key] += 1
        return True

    def _flow_claimable(self, due: Iterable[RunRecord]) -> list[RunRecord]:
        """``due`` in claim order (priority, then due time), runs of full keys left out."""
        ordered = sorted(
            due,
            key=lambda run: (-self._priority(run.id), run.wake_at, run.id),
        )
        taken: dict[str, int] = {}
        return [run for run in ordered if self._flow_room(run, taken)]

    def _priority(self, run_id: str) -> int:
        flow = self._flows.get(run_id)
        return flow.priority if flow is not None else 0

    def _used(self, key: str) -> int:
        return sum(
            1
            for run_id, flow in self._flows.items()
            if flow.limit_key == key and holds_slot(self._runs[run_id])
        )

    async def run_flow(self, run_id: str) -> RunFlow | None:
        """The run's flow control as stored, or None when it has none."""
        return self._flows.get(run_id)

    async def limit_wait(self, run_id: str) -> LimitWait | None:
        """Why a pending unheld run waits on its limit, or None when it does not."""
        run, flow = self._runs.get(run_id), self._flows.get(run_id)
        if run is None or flow is None or flow.limit_key is None or flow.limit_n is None:
            return None
        if run.status is not RunStatus.PENDING or run.owner is not None:
            return None
        used = self._used(flow.limit_key)
        if used < flow.limit_n:
            return None
        mine = (-flow.priority, run.wake_at or run.created_at, run.id)
        ahead = sum(
            1
            for other_id, other in self._flows.items()
            if other.limit_key == flow.limit_key
            and (o := self._runs[other_id]).status is RunStatus.PENDING
            and o.owner is None
            and (-other.priority, o.wake_at or o.created_at, o.id) < mine
        )
        return LimitWait(flow.limit_key, flow.limit_n, used, ahead)

    async def limits(self, now: datetime) -> list[LimitUsage]:
        """Every limit key with a live run or a step slot or start in the window."""
        now = utc(now)
        found: dict[tuple[str, str], LimitUsage] = {}
        for run_id, flow in self._flows.items():
            run = self._runs[run_id]
            if flow.limit_key is None or flow.limit_n is None or run.status not in _LIVE:
                continue
            usage = found.get(("workflow", flow.limit_key)) or LimitUsage(
                "workflow", flow.limit_key, flow.limit_n, 0
            )
            held, waiting = holds_slot(run), not holds_slot(run)
            found["workflow", flow.limit_key] = replace(
                usage, in_use=usage.in_use + held, waiting=usage.waiting + waiting
            )
        for key, _, limit in self._step_slots.values():
            usage = found.get(("step", key)) or LimitUsage("step", key, limit, 0)
            found["step", key] = replace(usage, in_use=usage.in_use + 1)
        for key, starts in self._step_starts.items():
            window = [start for start in starts if start[0] > now - start[2]]
            if window:
                _, count, period = window[-1]
                found["rate", key] = LimitUsage(
                    "rate", key, count, len(window), period=period.total_seconds()
                )
        return sorted(found.values(), key=lambda usage: (usage.kind, usage.key))

    # -- steps ------------------------------------------------------------------------

    async def take_step_slot(
        self, worker_id: str, holder: str, limits: StepLimits, now: datetime
    ) -> StepGrant:
        """Take a slot of the step's concurrency and a start in its rate's window, or neither."""
        now = utc(now)
        slots = self._step_slots
        key, n = limits.concurrency_key, limits.concurrency
        if key is not None and n is not None and holder not in slots:
            for gone in [h for h, (_, w, _) in slots.items() if w not in self._workers]:
                del slots[gone]
            used = sum(1 for k, _, _ in slots.values() if k == key)
            if used >= n:
                return StepGrant(
                    granted=False, retry_at=None, reason=f"{key}: {used} of {n} attempts running"
                )
        rate_key, count, period = limits.rate_key, limits.rate_count, limits.rate_period
        if rate_key is not None and count is not None and period is not None:
            window = [s for s in self._step_starts.get(rate_key, []) if s[0] > now - period]
            self._step_starts[rate_key] = window
            if len(window) >= count:
                retry_at = window[0][0] + period
                return StepGrant(
                    granted=False,
                    retry_at=retry_at,
                    reason=f"{rate_key}: {count} started in the window",
                )
            window.append((now, count, period))
        if key is not None and n is not None:
            slots[holder] = (key, worker_id, n)
        return StepGrant(granted=True)

    async def release_step_slot(self, holder: str) -> None:
        """Give a step attempt's slot back (nothing when it holds none)."""
        if self._step_slots.pop(holder, None) is not None:
            self._changed()
