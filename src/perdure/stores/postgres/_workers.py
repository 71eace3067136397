"""The PostgreSQL store's registry of workers: who is alive and what code each has.

A worker's row carries the workflows it defines (name -> code version, a JSON object)
beside its heartbeat. Alive means a heartbeat within the lease: a worker that stopped
heartbeating is not listed, whether or not anyone has reaped it yet.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from perdure._records import WorkerRecord

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping

    from asyncpg import Record

    from perdure._process import WorkerProcess

__all__ = [
    "HOST_WORKERS",
    "LIVE_WORKERS",
    "REAP_GONE",
    "REGISTER",
    "reap_gone_args",
    "worker_from_row",
    "workflows_json",
]

REGISTER = (
    "INSERT INTO workers (id, host, pid, started_at, heartbeat_at, workflows, process) "
    "VALUES ($1, $2, $3, $4, $4, coalesce($5::json, '{}'::json), $6) "
    "ON CONFLICT (id) DO UPDATE SET host = excluded.host, pid = excluded.pid, "
    "heartbeat_at = excluded.heartbeat_at, workflows = coalesce($5::json, workers.workflows), "
    "process = excluded.process"
)
"""Insert or refresh a worker's row; ``$5`` NULL keeps the workflows it had."""

HOST_WORKERS = "SELECT id, host, pid, process FROM workers WHERE host = $1 ORDER BY id"
"""The workers registered on a host, heartbeating or not (migration 0015)."""

REAP_GONE = "SELECT perdure_reap_gone($1, $2, $3, $4, $5, $6)"
"""Reap the workers found gone on their host, fenced by their rows (migration 0015)."""


def reap_gone_args(gone: Collection[WorkerProcess]) -> tuple[list[Any], ...]:
    """The arrays ``perdure_reap_gone`` takes: ids, hosts, pids and process tags."""
    return (
        [worker.id for worker in gone],
        [worker.host for worker in gone],
        [worker.pid for worker in gone],
        [worker.process for worker in gone],
    )


LIVE_WORKERS = (
    "SELECT id, host, pid, started_at, heartbeat_at, workflows::text AS workflows "
    "FROM workers WHERE heartbeat_at >= $1 ORDER BY started_at, id"
)


def workflows_json(workflows: Mapping[str, str] | None) -> str | None:
    """The ``workflows`` argument of `REGISTER`: JSON text, or None to keep the old one."""
    return None if workflows is None else json.dumps(dict(workflows), sort_keys=True)


def worker_from_row(row: Record) -> WorkerRecord:
    """A `WorkerRecord` from a `LIVE_WORKERS` row; workflows that do not read are none."""
    try:
        value = json.loads(row["workflows"])
    except (TypeError, ValueError):
        value = None
    workflows = (
        {str(name): str(version) for name, version in value.items()}
        if isinstance(value, dict)
        else {}
    )
    return WorkerRecord(
        row["id"], row["host"], row["pid"], row["started_at"], row["heartbeat_at"], workflows
    )
