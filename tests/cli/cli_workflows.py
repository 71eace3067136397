"""Workflows the command-line tests run, in-test and in `perdure worker` subprocesses."""

from __future__ import annotations

import pydantic

from perdure import FatalError, define_hook, sleep, step, workflow


@step
async def double(x: int) -> int:
    """Twice ``x``."""
    return x * 2


@workflow(name="cli-double")
async def double_it(x: int) -> int:
    """Double ``x`` after a short sleep."""
    await sleep("10ms")
    return await double(x)


@step
async def explode(message: str) -> None:
    """Fail for good."""
    raise FatalError(message)


@workflow(name="cli-fail")
async def fail_it(message: str) -> None:
    """A run that fails with ``message``."""
    await explode(message)


class Decision(pydantic.BaseModel):
    """What a person decides."""

    approved: bool
    note: str | None = None


decision_hook = define_hook(Decision, name="cli-decision")


@workflow(name="cli-wait")
async def wait_for_decision(token: str) -> str:
    """Wait for a decision sent to ``token``."""
    decision = await decision_hook.create(token=token)
    return "approved" if decision.approved else f"rejected: {decision.note}"
