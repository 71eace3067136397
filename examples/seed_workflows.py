"""The three workflows of the seed documents, in Python.

- `ai_content`: draft, then summarize; the summarizer fails now and then and is retried.
- `ai_refine`: fetch a draft, sleep (7 days in the seed), then refine it.
- `ai_approval`: draft, then wait for a person's decision sent through a hook.

The "AI" here is deterministic string work, so the examples run offline.
"""

from __future__ import annotations

import os
from typing import Literal

import pydantic

import perdure
from perdure import RetryPolicy, define_hook, sleep, step, workflow

# The seed's summarizer fails 30% of the time. Here the first attempt of each call fails,
# so every run shows a retry; a short backoff keeps the demo quick.
_summarize_attempts: dict[str, int] = {}


@step
async def generate_draft(topic: str) -> str:
    """Write a draft about ``topic``."""
    return f"A short post about {topic}: {topic} are wonderful, and here is why."


@step(retry=RetryPolicy(max_retries=3, initial_delay=0.2))
async def summarize_draft(draft: str) -> str:
    """Summarize a draft; fails on its first attempt to show retries."""
    step_id = perdure.get_step_metadata().step_id
    _summarize_attempts[step_id] = _summarize_attempts.get(step_id, 0) + 1
    if _summarize_attempts[step_id] == 1:
        raise ConnectionError("Transient AI provider error")
    return draft.split(":", maxsplit=1)[0] + "."


@workflow(name="ai-content")
async def ai_content(topic: str) -> dict[str, str]:
    """The seed's content workflow: draft, then summary."""
    draft = await generate_draft(topic)
    summary = await summarize_draft(draft)
    return {"draft": draft, "summary": summary}


@step
async def fetch_draft(draft_id: str) -> str:
    """Load a stored draft."""
    return f"Draft {draft_id}: cats sleep sixteen hours a day."


@step
def refine_draft(draft: str, notes: str | None = None) -> str:
    """Improve a draft (a plain `def` step: it runs in a thread pool)."""
    refined = draft.replace("sixteen", "up to sixteen")
    return f"{refined} ({notes})" if notes else refined


REFINE_WAIT = os.environ.get("PERDURE_REFINE_WAIT", "7 days")


@workflow(name="ai-refine")
async def ai_refine(draft_id: str) -> dict[str, str]:
    """The seed's refine workflow: fetch, sleep, refine."""
    draft = await fetch_draft(draft_id)
    await sleep(REFINE_WAIT)  # no worker slot is held while it sleeps
    refined = await refine_draft(draft)
    return {"draft_id": draft_id, "refined": refined}


class Approval(pydantic.BaseModel):
    """A person's decision on a draft."""

    decision: Literal["approved", "changes"]
    notes: str | None = None


approval_hook = define_hook(Approval)

published: list[str] = []


@step
async def publish_draft(draft: str) -> str:
    """Publish a draft; returns where it went."""
    published.append(draft)
    return f"published: {draft}"


@workflow(name="ai-approval")
async def ai_approval(topic: str, token: str = "draft-123") -> str:  # noqa: S107 (a hook token, not a secret)
    """The seed's approval workflow: draft, wait for a decision, publish."""
    draft = await generate_draft(topic)
    async for event in approval_hook.create(token=token):
        if event.decision == "approved":
            return await publish_draft(draft)
        revised = await refine_draft(draft, event.notes)
        return await publish_draft(revised)
    return "no decision"
