"""Print a run's timeline from its log: what happened, when, and for how long."""

from __future__ import annotations

import json
from typing import Any

import perdure
from perdure import EventType


def _short(value: Any, width: int = 60) -> str:
    text = json.dumps(value, default=str)
    return text if len(text) <= width else text[: width - 1] + "…"


def _detail(event: perdure.Event) -> str:  # noqa: PLR0911 (one line per event type)
    data = event.data
    match event.type:
        case EventType.RUN_CREATED:
            return f"input={_short(data.get('input'))}"
        case EventType.STEP_STARTED:
            return f"attempt {data.get('attempt')}"
        case EventType.STEP_COMPLETED:
            return f"-> {_short(data.get('output'))}"
        case EventType.STEP_RETRYING | EventType.STEP_FAILED:
            error = data.get("error") or {}
            return f"attempt {data.get('attempt')}: {error.get('type')}: {error.get('message')}"
        case EventType.SLEEP_STARTED:
            return f"until {data.get('wake_at')}"
        case EventType.HOOK_CREATED | EventType.HOOK_DISPOSED:
            return f"token={data.get('token')!r}"
        case EventType.HOOK_RECEIVED:
            return f"payload={_short(data.get('payload'))}"
        case EventType.RUN_COMPLETED:
            return f"-> {_short(data.get('output'))}"
        case EventType.RUN_FAILED:
            return str((data.get("error") or {}).get("message"))
    return ""


async def print_timeline(run: perdure.Run[Any]) -> None:
    """Print every event of ``run`` with its offset from the run's creation."""
    events = await run.events()
    record = await run.refresh()
    print(f"\nrun {run.id}  workflow={run.workflow}  status={record.status.value}")
    start = events[0].created_at
    for event in events:
        offset = (event.created_at - start).total_seconds()
        cid = event.correlation_id or ""
        print(f"  +{offset:8.3f}s  {event.type.value:<16} {cid:<28} {_detail(event)}")
