"""Logging: RunContextFilter puts the run's and step's ids on every record."""

from __future__ import annotations

import logging

from conftest import EngineFactory
from perdure import RunContextFilter, step, workflow

log = logging.getLogger("tests.user_code")


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@step(name="logging-step")
async def chatty(x: int) -> int:
    log.info("in the step")
    return x


@workflow(name="logging-workflow")
async def logged(x: int) -> int:
    log.info("in the workflow")
    return await chatty(x)


async def test_records_carry_the_run_and_step_they_come_from(make_engine: EngineFactory) -> None:
    """A record from a step names its run, workflow, step id and attempt; one from the
    workflow names the run; one from elsewhere has empty ids."""
    handler = Collect()
    handler.addFilter(RunContextFilter())
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        async with make_engine() as engine:
            run = await engine.start(logged, 3, run_id="logged-1")
            assert 3 == await run.result(timeout=10)
        log.info("outside")
    finally:
        log.removeHandler(handler)

    seen = {
        record.getMessage(): (
            record.perdure_run_id,  # type: ignore[attr-defined]
            record.perdure_workflow,  # type: ignore[attr-defined]
            record.perdure_step_id,  # type: ignore[attr-defined]
            record.perdure_attempt,  # type: ignore[attr-defined]
        )
        for record in handler.records
    }
    assert ("logged-1", "logging-workflow", "", 0) == seen["in the workflow"]
    assert ("logged-1", "logging-workflow", "logged-1:logging-step#1", 1) == seen["in the step"]
    assert ("", "", "", 0) == seen["outside"]
