"""The three workflows of the seed documents (examples/seed_workflows.py), end to end."""

from __future__ import annotations

from datetime import timedelta

import seed_workflows

from helpers import of_type, types, wait_for_hook
from perdure import Engine, EventType, RunStatus


async def test_content_workflow_retries_the_summarizer_and_completes(engine: Engine) -> None:
    """ai_content drafts and summarizes, and the summarizer's failed first try is logged."""
    run = await engine.start(seed_workflows.ai_content, "cats")

    result = await run.result(timeout=5)

    assert {
        "draft": "A short post about cats: cats are wonderful, and here is why.",
        "summary": "A short post about cats.",
    } == result
    events = await run.events()
    retrying = of_type(events, EventType.STEP_RETRYING)
    assert ["summarize_draft#1"] == [e.correlation_id for e in retrying]
    assert "builtins.ConnectionError" == retrying[0].data["error"]["type"]
    assert [
        "run_created",
        "run_started",
        "step_started",
        "step_completed",
        "step_started",
        "step_retrying",
        "step_started",
        "step_completed",
        "run_completed",
    ] == types(events)
    assert RunStatus.COMPLETED == await run.status()


async def test_refine_workflow_sleeps_seven_days_under_the_fake_clock(engine: Engine) -> None:
    """ai_refine sleeps 7 days of fake time between fetching and refining the draft."""
    run = await engine.start(seed_workflows.ai_refine, "d1")

    result = await run.result(timeout=5)

    assert {
        "draft_id": "d1",
        "refined": "Draft d1: cats sleep up to sixteen hours a day.",
    } == result
    events = await run.events()
    (slept,) = of_type(events, EventType.SLEEP_STARTED)
    (woke,) = of_type(events, EventType.SLEEP_COMPLETED)
    assert timedelta(days=7) == woke.created_at - slept.created_at
    assert RunStatus.COMPLETED == await run.status()


async def test_approval_workflow_publishes_the_draft_when_approved(engine: Engine) -> None:
    """ai_approval waits on its hook and publishes the draft as is on "approved"."""
    token = "approve-1"
    run = await engine.start(seed_workflows.ai_approval, "dogs", token)
    await wait_for_hook(engine, token)

    await seed_workflows.approval_hook.resume(token, {"decision": "approved"})

    assert (
        "published: A short post about dogs: dogs are wonderful, and here is why."
        == await run.result(timeout=5)
    )
    received = of_type(await run.events(), EventType.HOOK_RECEIVED)
    assert [{"decision": "approved", "notes": None}] == [e.data["payload"] for e in received]
    assert await engine.store.get_hook(token) is None


async def test_approval_workflow_refines_the_draft_when_changes_are_asked(engine: Engine) -> None:
    """On "changes", ai_approval refines the draft with the reviewer's notes before publishing."""
    token = "changes-1"
    run = await engine.start(seed_workflows.ai_approval, "dogs", token)
    await wait_for_hook(engine, token)

    await seed_workflows.approval_hook.resume(token, {"decision": "changes", "notes": "shorter"})

    assert (
        "published: A short post about dogs: dogs are wonderful, and here is why. (shorter)"
        == await run.result(timeout=5)
    )
    steps = [e.data["name"] for e in of_type(await run.events(), EventType.STEP_COMPLETED)]
    assert ["generate_draft", "refine_draft", "publish_draft"] == steps
