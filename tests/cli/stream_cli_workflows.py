"""Workflows the ``perdure stream`` tests run in the test process (imported by name)."""

from __future__ import annotations

import asyncio

import perdure

gates: dict[str, asyncio.Event] = {}


@perdure.step(max_retries=1)
async def speak(key: str) -> str:
    """Attempt 1 writes a word and fails; attempt 2 writes the words, holding at the gate."""
    out = perdure.get_writable("tokens")
    if perdure.get_step_metadata().attempt == 1:
        await out.write("Oops")
        await out.flush()  # stored, so that its retraction shows
        raise RuntimeError("the model stopped")
    await out.write("Hello")
    if key in gates:
        await gates[key].wait()
    await out.write(", world")
    return "said"


@perdure.workflow(name="streams.cli_speech")
async def speech(key: str) -> str:
    out = perdure.get_writable("tokens")
    await out.write({"phase": "start"})
    said = await speak(key)
    await out.write("!\n")
    return said
