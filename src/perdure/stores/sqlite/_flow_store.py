"""`FlowStore` for `SQLiteStore`: the calls, each one writer transaction or one read.

The functions they run are in `perdure.stores.sqlite._flow`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, TypeVar

from perdure.stores._common import utc
from perdure.stores.sqlite import _flow as flow_ops
from perdure.stores.sqlite import _ops as ops

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import Callable
    from datetime import datetime

    from perdure._flow import LimitUsage, LimitWait, RunFlow, StepGrant, StepLimits
    from perdure._records import NewRun, RunRecord

__all__ = ["SQLiteFlow"]

T = TypeVar("T")


class SQLiteFlow:
    """`FlowStore` for `SQLiteStore`, which supplies ``_write`` and ``_read``."""

    if TYPE_CHECKING:

        async def _write(
            self, fn: Callable[[sqlite3.Connection], T], *, durable: bool = False
        ) -> T: ...

        async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...

    async def create_flow_run(
        self, run: NewRun, flow: RunFlow, now: datetime
    ) -> tuple[RunRecord, bool]:
        """Create the run with its flow control, durably, or find its dedupe key's run."""
        return await self._write(
            lambda conn: flow_ops.create_flow_run(conn, run, flow, now, ops.create_run),
            durable=True,
        )

    async def run_flow(self, run_id: str) -> RunFlow | None:
        """The run's flow control, or None without any."""
        return await self._read(lambda conn: flow_ops.run_flow(conn, run_id))

    async def limit_wait(self, run_id: str) -> LimitWait | None:
        """Why a pending unheld run waits on its limit, or None."""
        return await self._read(lambda conn: flow_ops.limit_wait(conn, run_id))

    async def limits(self, now: datetime) -> list[LimitUsage]:
        """Each limit key in use (a rate's window ends at ``now``)."""
        now = utc(now)
        return await self._read(lambda conn: flow_ops.limits(conn, now))

    async def take_step_slot(
        self, worker_id: str, holder: str, limits: StepLimits, now: datetime
    ) -> StepGrant:
        """A step's slot and a start in its window, both or neither, in one transaction."""
        now = utc(now)
        return await self._write(
            lambda conn: flow_ops.take_step_slot(conn, worker_id, holder, limits, now)
        )

    async def release_step_slot(self, holder: str) -> None:
        """Give the slot back."""
        await self._write(lambda conn: flow_ops.release_step_slot(conn, holder))
