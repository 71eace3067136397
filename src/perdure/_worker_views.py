"""The JSON shapes of live workers, and what the fleet says of a run, for the CLI and HTTP.

``perdure workers --json`` and ``GET /workers`` print `WorkerView`s. A run's views
(``perdure runs``/``show``, ``GET /runs``, the dashboard) carry `RunFleet`'s keys when
the live workers were read with it: the version of the run's workflow on the worker
holding it, the versions the live workers define, and, for a run waiting for a worker
that none of them can be, why (`perdure._fleet.Fleet.stranded`). Shapes as in
`perdure._views`: `TypedDict`s whose fields the OpenAPI document is generated from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

from pydantic import Field, WithJsonSchema
from typing_extensions import TypedDict  # pydantic reads only this one's fields on 3.11

if TYPE_CHECKING:
    from perdure._fleet import Fleet
    from perdure._records import RunRecord, WorkerRecord

__all__ = ["RunFleet", "WorkerList", "WorkerView", "fleet_json", "worker_json"]

Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]


class WorkerView(TypedDict):
    """A live worker: ``perdure workers --json``, ``GET /workers``."""

    id: str
    host: str
    pid: int
    started_at: Timestamp
    heartbeat_at: Annotated[Timestamp, Field(description="Its last heartbeat.")]
    workflows: Annotated[
        dict[str, str],
        Field(description="The workflows the worker defines: name -> code version."),
    ]


class WorkerList(TypedDict):
    """The live workers, oldest first."""

    workers: list[WorkerView]


class RunFleet(TypedDict, total=False):
    """What the live workers say of one run: in a run's view when they were read with it."""

    worker_version: Annotated[
        str | None,
        Field(
            description="The version of the run's workflow on the live worker holding it "
            "(null when no live worker holds it)."
        ),
    ]
    live_versions: Annotated[
        list[str],
        Field(description="The versions of the run's workflow the live workers define."),
    ]
    stranded: Annotated[
        str | None,
        Field(
            description="Why no worker can take the run ('no live worker defines "
            "workflow ...'), for a run waiting for one; null otherwise."
        ),
    ]


def worker_json(worker: WorkerRecord) -> WorkerView:
    """A live worker as JSON."""
    return WorkerView(
        id=worker.id,
        host=worker.host,
        pid=worker.pid,
        started_at=worker.started_at.isoformat(),
        heartbeat_at=worker.heartbeat_at.isoformat(),
        workflows=dict(sorted(worker.workflows.items())),
    )


def fleet_json(record: RunRecord, fleet: Fleet) -> RunFleet:
    """What the live workers say of the run."""
    return RunFleet(
        worker_version=fleet.holder_version(record),
        live_versions=fleet.versions(record.workflow),
        stranded=fleet.stranded(record),
    )
