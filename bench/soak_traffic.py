"""The soak's traffic (`soak.py`): a steady stream of runs, hooks resumed, runs cancelled.

All of it goes through an ``Engine(url, worker=False)`` in the driver's process (the
way a web app uses perdure), plus ``perdure resume-hook`` without ``--module`` for a
fifth of the hooks (the usual way another service resumes one). Every call the public
API accepted is written down in the `Journal`, which the checks (`soak_check.py`)
compare with the database at the end: an accepted start or resume must be there.

A call that raises something other than perdure's answer about the request itself
(unknown hook, bad payload) is a caller error: the soak counts each by type (a
driver's own exception, not a `perdure.StoreError`, is a violation) and tries again
when that is safe (a start with a ``run_id`` and a cancel are idempotent; a resume is
retried, and a retry that finds the hook gone makes the first one a "maybe").
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from soak_workflows import approval, chain, decision, long, queued, sleeper

from perdure import Engine, HookNotFoundError, RunNotFoundError, Workflow

T = TypeVar("T")

MIX = {
    "soak-chain": 35,
    "soak-sleeper": 15,
    "soak-approval": 20,
    "soak-queued": 20,
    "soak-long": 10,
}
"""How often each workflow is started, in per cent."""
CANCEL_OTHERS = 0.03
"""The share of runs other than soak-long (all of which are cancelled) cancelled too."""
CLI_RESUMES = 0.2
"""The share of hooks resumed with ``perdure resume-hook`` rather than the Python API."""
INVALID_FIRST = 0.25
"""The share of those CLI resumes that first send a payload the schema refuses."""
BURST_RUNS = 30
"""Every 30 to 60 s, this many runs of `BURST_STEPS` steps start at once: a worker
frozen then holds many runs mid-step (see `soak_chaos`), as in the issue's section 1."""
BURST_STEPS = 30
RETRY_FOR = 120.0
"""How long a caller keeps retrying a call that failed for want of the database."""


@dataclass(frozen=True, slots=True)
class Started:
    run_id: str
    workflow: str
    args: list[Any]
    at: float


@dataclass(frozen=True, slots=True)
class Resumed:
    """A resume: ``accepted`` (the call returned), or ``maybe`` (a call failed, and a
    retry found the hook gone: the failed one may have been stored)."""

    run_id: str
    nonce: str
    decision: str
    via: str
    outcome: str
    at: float


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A cancel the API accepted at ``at``; ``status`` is the run's as the call returned."""

    run_id: str
    at: float
    status: str


@dataclass(frozen=True, slots=True)
class Refused:
    """An invalid payload sent with ``perdure resume-hook``: its exit code and output."""

    run_id: str
    nonce: str
    code: int
    output: str


@dataclass
class Journal:
    """Everything the traffic did that the database must now reflect."""

    started: dict[str, Started] = field(default_factory=dict)
    resumed: list[Resumed] = field(default_factory=list)
    cancelled: list[Cancelled] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    caller_errors: Counter[str] = field(default_factory=Counter)
    """``call: module.Type`` of every exception a public API call raised on the way."""
    gave_up: list[str] = field(default_factory=list)
    began: float = field(default_factory=time.time)
    """When the traffic began (epoch seconds)."""


class Traffic:
    """Starts runs at ``rate`` per second and follows each up (resume, cancel)."""

    def __init__(self, engine: Engine, url: str, rate: float, chaos: random.Random) -> None:
        self.engine = engine
        self.url = url
        self.rate = rate
        self.random = chaos
        self.journal = Journal()
        self.follow_ups: set[asyncio.Task[None]] = set()
        self.burst = asyncio.Event()
        """Set when a burst of runs has been started (`soak_chaos` clears it)."""
        self._count = 0

    async def call(self, what: str, make: Callable[[], Awaitable[T]]) -> T:
        """``await make()``, again with backoff while it fails for want of the database."""
        deadline = time.monotonic() + RETRY_FOR
        delay = 0.1
        while True:
            try:
                return await make()
            except (HookNotFoundError, RunNotFoundError, ValueError):
                raise
            except Exception as exc:
                kind = type(exc)
                self.journal.caller_errors[f"{what}: {kind.__module__}.{kind.__qualname__}"] += 1
                if time.monotonic() > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def run(self, until: float) -> None:
        """Start runs until the monotonic time ``until``, and a burst now and then."""
        next_burst = time.monotonic() + self.random.uniform(30, 60)
        while time.monotonic() < until:
            self._count += 1
            await self.start_one(self._count)
            if time.monotonic() >= next_burst:
                next_burst = time.monotonic() + self.random.uniform(30, 60)
                self._follow(self.burst_of(self._count))
            await asyncio.sleep(self.random.uniform(0.5, 1.5) / self.rate)

    async def burst_of(self, n: int) -> None:
        """Start `BURST_RUNS` long chains at once; set `burst` once they are stored."""
        seeds = [self.random.randrange(1000) for _ in range(BURST_RUNS)]
        await asyncio.gather(
            *(
                self.start(f"burst-{n:05d}-{k:02d}", chain, [BURST_STEPS, seed])
                for k, seed in enumerate(seeds)
            )
        )
        self.burst.set()

    async def start_one(self, n: int) -> None:
        """Start one run of a workflow drawn from `MIX`, and plan its follow-ups."""
        workflow = self.random.choices(list(MIX), weights=list(MIX.values()))[0]
        seed = self.random.randrange(1000)
        run_id = f"{workflow.removeprefix('soak-')}-{n:05d}"
        args: list[Any]
        fn: Workflow[..., Any]
        match workflow:
            case "soak-chain":
                args, fn = [self.random.randint(3, 10), seed], chain
            case "soak-sleeper":
                args, fn = [round(self.random.uniform(0.5, 5.0), 2), seed], sleeper
            case "soak-approval":
                args, fn = [f"hook-{run_id}"], approval
            case "soak-queued":
                args, fn = [seed], queued
            case _:
                args, fn = [self.random.randint(8, 24)], long
        if not await self.start(run_id, fn, args):
            return
        if workflow == "soak-approval":
            self._follow(self.resume(run_id, args[0]))
        if workflow == "soak-long" or self.random.random() < CANCEL_OTHERS:
            self._follow(self.cancel(run_id, self.random.uniform(0.2, 5.0)))

    async def start(self, run_id: str, fn: Workflow[..., Any], args: list[Any]) -> bool:
        """Start a run, writing it down once the API accepted it; whether it did."""
        try:
            await self.call("start", lambda: self.engine.start(fn, *args, run_id=run_id))
        except Exception as exc:
            self.journal.gave_up.append(f"start {run_id}: {exc!r}")
            return False
        self.journal.started[run_id] = Started(
            run_id, fn.__perdure_workflow__.name, args, time.time()
        )
        return True

    def _follow(self, work: Awaitable[None]) -> None:
        async def wrapped() -> None:
            await work

        task = asyncio.create_task(wrapped())
        self.follow_ups.add(task)
        task.add_done_callback(self.follow_ups.discard)

    async def cancel(self, run_id: str, after: float) -> None:
        await asyncio.sleep(after)
        try:
            record = await self.call("cancel", lambda: self.engine.cancel(run_id))
        except Exception as exc:
            self.journal.gave_up.append(f"cancel {run_id}: {exc!r}")
            return
        self.journal.cancelled.append(Cancelled(run_id, time.time(), record.status.value))

    async def _hook_live(self, run_id: str, token: str) -> bool:
        """Wait until the run's hook is live (True) or the run has ended (False)."""
        deadline = time.monotonic() + RETRY_FOR * 2
        while time.monotonic() < deadline:
            try:
                if await self.engine.store.get_hook(token) is not None:
                    return True
                record = await self.engine.store.get_run(run_id)
                if record is not None and record.status.is_terminal:
                    return False
            except Exception:  # noqa: S110 - the store's own reads during an outage
                pass
            await asyncio.sleep(0.2)
        return False

    async def resume(self, run_id: str, token: str) -> None:
        """Resume the run's hook once it is live, by the API or the command line."""
        if not await self._hook_live(run_id, token):
            return
        await asyncio.sleep(self.random.uniform(0.0, 2.0))
        choice = self.random.choice(["approved", "changes"])
        nonce = f"{run_id}-{self.random.randrange(10**9)}"
        if self.random.random() < CLI_RESUMES:
            if self.random.random() < INVALID_FIRST:
                code, output = await self.cli_resume(token, {"decision": "maybe", "nonce": "bad"})
                self.journal.refused.append(Refused(run_id, "bad", code, output))
            outcome = await self.resume_by_cli(token, {"decision": choice, "nonce": nonce})
            via = "cli"
        else:
            outcome = await self.resume_by_api(token, {"decision": choice, "nonce": nonce})
            via = "api"
        if outcome in {"accepted", "maybe"}:
            self.journal.resumed.append(Resumed(run_id, nonce, choice, via, outcome, time.time()))

    async def resume_by_api(self, token: str, payload: dict[str, str]) -> str:
        failed = False

        async def once() -> Any:
            nonlocal failed
            try:
                return await decision.resume(token, payload, engine=self.engine)
            except (HookNotFoundError, ValueError):
                raise
            except Exception:
                failed = True
                raise

        try:
            await self.call("resume", once)
        except HookNotFoundError:
            return "maybe" if failed else "gone"
        except Exception as exc:
            self.journal.gave_up.append(f"resume {token}: {exc!r}")
            return "gave up"
        return "accepted"

    async def cli_resume(self, token: str, payload: dict[str, str]) -> tuple[int, str]:
        """``perdure resume-hook TOKEN --data JSON`` (no ``--module``): exit code, output."""
        process = await asyncio.create_subprocess_exec(
            *(sys.executable, "-m", "perdure", "resume-hook", token),
            *("--data", json.dumps(payload), "--database-url", self.url),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await process.communicate()
        return await process.wait(), output.decode(errors="replace").strip()

    async def resume_by_cli(self, token: str, payload: dict[str, str]) -> str:
        """Exit 1 (the database unreachable) is retried; exit 2 is a token no live hook
        holds: gone, or "maybe" after a failed attempt."""
        deadline = time.monotonic() + RETRY_FOR
        failed = False
        while True:
            code, output = await self.cli_resume(token, payload)
            if code == 0:
                return "accepted"
            if code == 2:
                return "maybe" if failed else "gone"
            failed = True
            self.journal.caller_errors[f"resume-hook CLI: exit {code}"] += 1
            if time.monotonic() > deadline:
                self.journal.gave_up.append(f"resume-hook {token}: exit {code}: {output}")
                return "gave up"
            await asyncio.sleep(1.0)
