"""`FlowStore` for `PostgresStore`: flow-controlled starts, the claim, and step limits.

Counting is serialized per key with transaction-scoped advisory locks (migration
0012): two workers claiming at once, on any machines, never both take a key's last
slot, and two starts with one dedupe key at once create one run. A start with flow
control is one transaction of its own (it skips group commit): it must find the live
run holding its dedupe key and create the run, or take that run's place, atomically.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import TYPE_CHECKING

from perdure._flow import LimitUsage, LimitWait, RunFlow, StepGrant
from perdure._log import run_created
from perdure.stores._common import utc
from perdure.stores.postgres import _ops as ops
from perdure.stores.postgres import _rows as rows

if TYPE_CHECKING:
    from collections.abc import Collection
    from datetime import datetime

    from asyncpg import Pool, Record

    from perdure._flow import StepLimits
    from perdure._records import NewRun, RunRecord

__all__ = ["CLAIM", "CLAIM_OF", "PostgresFlow", "new_run_row"]

CLAIM = f"SELECT {rows.RUN_COLUMNS} FROM perdure_claim($1, $2, $3, NULL)"  # noqa: S608
CLAIM_OF = f"SELECT {rows.RUN_COLUMNS} FROM perdure_claim($1, $2, $3, $4::text[])"  # noqa: S608

_LIVE = "status IN ('pending', 'running', 'blocked')"
_FIND_DEDUPED = (
    "SELECT id, status, owner, last_seq FROM runs "  # noqa: S608 - constant fragments
    f"WHERE workflow = $1 AND dedupe_key = $2 AND {_LIVE} FOR UPDATE"
)
_SET_FLOW = (
    "UPDATE runs SET priority = $2, dedupe_key = $3, limit_key = $4, limit_n = $5, "
    "wake_at = coalesce($6, wake_at) WHERE id = $1"
)
_DEBOUNCE = (
    "WITH event AS (UPDATE events SET data = $2::json WHERE run_id = $1 AND seq = 1) "
    "UPDATE runs SET input = $3::json, wake_at = $4, updated_at = $5 WHERE id = $1"
)
_CREATED_DATA = "SELECT data::text FROM events WHERE run_id = $1 AND seq = 1"
_USED = "SELECT perdure_limit_used($1)"
_LIMIT_WAIT = (
    "SELECT limit_key, limit_n, priority, coalesce(wake_at, created_at) AS due FROM runs "
    "WHERE id = $1 AND status = 'pending' AND owner IS NULL AND limit_key IS NOT NULL"
)
_AHEAD = (
    "SELECT count(*) FROM runs WHERE limit_key = $1 AND status = 'pending' AND owner IS NULL "
    "AND (priority > $2 OR (priority = $2 AND (coalesce(wake_at, created_at), id) < ($3, $4)))"
)
_LIMITS = (
    "SELECT 'workflow' AS kind, limit_key AS key, max(limit_n) AS lim, "  # noqa: S608
    "count(*) FILTER (WHERE status IN ('running', 'blocked') OR owner IS NOT NULL) AS used, "
    "count(*) FILTER (WHERE status = 'pending' AND owner IS NULL) AS waiting, "
    "NULL::bigint AS period FROM runs "
    f"WHERE limit_key IS NOT NULL AND {_LIVE} GROUP BY limit_key "
    "UNION ALL SELECT 'step', key, max(limit_n), count(*), 0, NULL FROM step_slots "
    "WHERE worker_id IN (SELECT id FROM workers) GROUP BY key "
    "UNION ALL SELECT 'rate', key, max(rate_count), count(*), 0, max(period_us) "
    "FROM step_starts WHERE started_at > $1::timestamptz - make_interval(secs => period_us / 1e6) "
    "GROUP BY key ORDER BY 1, 2"
)
_TAKE = "SELECT granted, retry_at FROM perdure_take_step_slot($1, $2, $3, $4, $5, $6, $7, $8)"


def new_run_row(run: NewRun, now: datetime) -> ops.NewRunRow:
    """`ops.CREATE_RUN`'s arguments for ``run``, the same ``run_created`` for every start.

    `PostgresStore.create_run` and a start with flow control both build it here. Its
    deadline and attributes ride in the event: migration 0010's trigger indexes them.
    """
    event = run_created(
        workflow=run.workflow,
        input=run.input,
        version=run.version,
        attributes=run.attributes,
        deadline=None if run.deadline is None else utc(run.deadline),
        parent_id=run.parent_id,
        root_id=run.root_id,
        parent_call=run.parent_call,
    )
    return ops.NewRunRow(
        run.id, run.workflow, rows.dumps(run.input), run.version, rows.dumps(event.data), now
    )


class PostgresFlow:
    """`FlowStore` for `PostgresStore`, which supplies its pool as ``_db``."""

    if TYPE_CHECKING:

        @property
        def _db(self) -> Pool[Record]: ...

        async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def create_flow_run(
        self, run: NewRun, flow: RunFlow, now: datetime
    ) -> tuple[RunRecord, bool]:
        """Create the run with its flow control, durably, or find its dedupe key's run."""
        now = utc(now)
        found, created = await self._create_flow_run(run, flow, now)
        record = await self.get_run(found)
        if record is None:  # pragma: no cover - runs are never deleted
            raise RuntimeError(f"run {found!r} exists and yet cannot be read")
        return record, created

    async def _create_flow_run(self, run: NewRun, flow: RunFlow, now: datetime) -> tuple[str, bool]:
        async with self._db.acquire() as conn, conn.transaction():
            if flow.dedupe_key is not None:
                # One start per dedupe key at a time: the unique index would refuse the
                # second insert, and the lock lets it find the first run instead.
                lock = f"perdure-dedupe:{run.workflow}:{flow.dedupe_key}"
                await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", lock)
                live = await conn.fetchrow(_FIND_DEDUPED, run.workflow, flow.dedupe_key)
                if live is not None:
                    if (
                        flow.not_before is not None
                        and live["status"] == "pending"
                        and live["owner"] is None
                        and live["last_seq"] == 1
                    ):
                        data = json.loads(await conn.fetchval(_CREATED_DATA, live["id"]))
                        data["input"] = run.input
                        await conn.execute(
                            _DEBOUNCE, live["id"], rows.dumps(data), rows.dumps(run.input),
                            utc(flow.not_before), now,
                        )  # fmt: skip
                    return str(live["id"]), False
            if not await conn.fetchval(ops.CREATE_RUN, *new_run_row(run, now)):
                return run.id, False
            not_before = None if flow.not_before is None else utc(flow.not_before)
            await conn.execute(
                _SET_FLOW, run.id, flow.priority, flow.dedupe_key, flow.limit_key,
                flow.limit_n, not_before,
            )  # fmt: skip
            return run.id, True

    async def claim_flow(
        self, worker_id: str, now: datetime, limit: int, workflows: Collection[str] | None
    ) -> list[Record]:
        """The claim (`perdure_claim`): priority first, limits counted under their locks."""
        if workflows is None:
            return await self._db.fetch(CLAIM, worker_id, now, limit)
        return await self._db.fetch(CLAIM_OF, worker_id, now, limit, sorted(workflows))

    async def run_flow(self, run_id: str) -> RunFlow | None:
        """The run's flow control, or None without any."""
        row = await self._db.fetchrow(
            "SELECT priority, dedupe_key, limit_key, limit_n FROM runs WHERE id = $1", run_id
        )
        if row is None or (row[0] == 0 and row[1] is None and row[2] is None):
            return None
        return RunFlow(row[0], row[1], None, row[2], row[3])

    async def limit_wait(self, run_id: str) -> LimitWait | None:
        """Why a pending unheld run waits on its limit, or None."""
        async with self._db.acquire() as conn, conn.transaction(isolation="repeatable_read"):
            row = await conn.fetchrow(_LIMIT_WAIT, run_id)
            if row is None:
                return None
            used = int(await conn.fetchval(_USED, row["limit_key"]))
            if used < row["limit_n"]:
                return None
            ahead = await conn.fetchval(
                _AHEAD, row["limit_key"], row["priority"], row["due"], run_id
            )
        return LimitWait(row["limit_key"], row["limit_n"], used, int(ahead))

    async def limits(self, now: datetime) -> list[LimitUsage]:
        """Each limit key in use."""
        found = await self._db.fetch(_LIMITS, utc(now))
        return [
            LimitUsage(
                row["kind"],
                row["key"],
                int(row["lim"]),
                int(row["used"]),
                int(row["waiting"]),
                period=None if row["period"] is None else row["period"] / 1e6,
            )
            for row in found
        ]

    async def take_step_slot(
        self, worker_id: str, holder: str, limits: StepLimits, now: datetime
    ) -> StepGrant:
        """A step's slot and a start in its window, both or neither, in one round trip."""
        span = None
        if limits.rate_period is not None:
            span = limits.rate_period // timedelta(microseconds=1)
        row = await self._db.fetchrow(
            _TAKE, worker_id, holder, limits.concurrency_key, limits.concurrency,
            limits.rate_key, limits.rate_count, span, utc(now),
        )  # fmt: skip
        if row is None:  # pragma: no cover - the function returns one row
            raise RuntimeError("perdure_take_step_slot returned no row")
        if row["granted"]:
            return StepGrant(granted=True)
        if row["retry_at"] is not None:
            return StepGrant(
                granted=False, retry_at=row["retry_at"], reason=f"{limits.rate_key}: window full"
            )
        return StepGrant(
            granted=False, retry_at=None, reason=f"{limits.concurrency_key}: all slots in use"
        )

    async def release_step_slot(self, holder: str) -> None:
        """Give the slot back."""
        await self._db.execute("SELECT perdure_release_step_slot($1)", holder)
