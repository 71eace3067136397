"""Static checks that @workflow and @step keep signatures and return types.

Not collected by pytest: mypy checks this file (`make typecheck`). A ``type: ignore``
here marks a call that must be refused; with ``warn_unused_ignores`` (mypy strict), the
check fails if it is ever accepted.
"""

from __future__ import annotations

from typing import assert_type

from perdure import Engine, Run, Step, Workflow, define_hook, step, workflow


@step
async def async_step(x: int, *, label: str = "") -> str:
    """An async step."""
    return f"{label}{x}"


@step
def sync_step(x: int) -> list[int]:
    """A plain def step."""
    return [x]


@step(max_retries=1, timeout="5s")
async def configured_step(flag: bool) -> bool:
    """A step made by the decorator with options."""
    return not flag


@workflow
async def plain_workflow(name: str, count: int = 1) -> dict[str, int]:
    """A workflow."""
    return {name: count}


@workflow(name="typed")
async def named_workflow() -> None:
    """A workflow made by the decorator with options."""


hook = define_hook(dict)


async def check_decorators(engine: Engine) -> None:
    """Decorated functions keep their types."""
    assert_type(await async_step(1, label="a"), str)
    assert_type(await sync_step(1), list[int])
    assert_type(await configured_step(True), bool)  # noqa: FBT003
    as_step: Step[..., str] = async_step
    as_workflow: Workflow[..., dict[str, int]] = plain_workflow
    assert_type(await as_step(1), str)
    assert_type(await as_workflow("a"), dict[str, int])
    assert_type(await plain_workflow("a"), dict[str, int])
    assert_type(await named_workflow(), None)

    run = await engine.start(plain_workflow, "a", 2)
    assert_type(run, Run[dict[str, int]])
    assert_type(await run.result(timeout=1), dict[str, int])


async def check_refusals() -> None:
    """Calls that do not fit the signature are type errors."""
    await async_step("not an int")  # type: ignore[arg-type]
    await sync_step()  # type: ignore[call-arg]
    await plain_workflow(1)  # type: ignore[arg-type]
    await async_step(1, colour="red")  # type: ignore[call-arg]
