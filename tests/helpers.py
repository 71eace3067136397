"""What the tests share, defined once: waiting on conditions, reading logs, driving a
store by hand, and running real child processes.

- waiting: `eventually` (poll anything), `wait_until` and the ``wait_for_*`` helpers
  (wake at every change an Engine notices);
- reading a run's log: `of_type`, `types`;
- a store driven by hand, with explicit times (stores never read a clock): `T0`, `at`,
  `hold`, `drain`; and rows damaged through its own connection: `damage`, `unreadable`;
- other processes: `ChildProcess`, and `run_fresh_python` for a one-shot interpreter;
- hook payloads for property tests: `approval_payloads` (any JSON, mostly near a valid
  approval) and `approval_outcome` (what resuming an approval hook must store, if
  anything), written apart from perdure's own checks so that they can disagree.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from hypothesis import strategies as st

from perdure import Engine, Event, EventType
from perdure._records import NewRun
from perdure.stores import PostgresStore, SQLiteStore
from perdure.testing import FakeClock

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from perdure import Run
    from perdure._records import HookRecord
    from perdure.stores import Store

WAIT = 5.0
"""Seconds a test waits for a condition before it fails."""


T = TypeVar("T")


def run_fresh_python(source: str) -> str:
    """Run ``source`` in a new interpreter with no OpenTelemetry settings; its output.

    For what one process can only show once: whether tracing is installed yet, or how
    much memory objects take beside nothing else. Fails if the program fails.
    """
    environment = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    done = subprocess.run(
        [sys.executable, "-c", source],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
        env=environment,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


async def eventually(
    condition: Callable[[], Awaitable[T | None]], what: str, timeout: float, *, every: float
) -> T:
    """Check ``condition`` every ``every`` seconds until it returns something truthy, and
    return that; fail naming ``what`` after ``timeout`` seconds.

    For what no Engine announces: other processes' output, their exit, their files.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await condition()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {timeout:g}s waiting for {what}")
        await asyncio.sleep(every)


async def wait_until(
    engine: Engine, condition: Callable[[], Awaitable[Any]], timeout: float = WAIT
) -> Any:
    """Wait until ``condition()`` returns something truthy, and return it.

    It is checked again at every change the Engine notices, and every 20 ms for the
    things it does not announce (a worker's counters, its own evictions).
    """
    async with asyncio.timeout(timeout):
        while True:
            changed = engine.changed()
            value = await condition()
            if value:
                return value
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.02):
                    await changed.wait()


async def wait_for_hook(engine: Engine, token: str, timeout: float = WAIT) -> HookRecord:
    """Wait until a live hook holds ``token``."""
    hook: HookRecord = await wait_until(engine, lambda: engine.store.get_hook(token), timeout)
    return hook


async def wait_for_event(
    engine: Engine, run: Run[Any], kind: EventType, timeout: float = WAIT
) -> Event:
    """Wait until the run's log holds an event of ``kind``; return the first one."""

    async def first() -> Event | None:
        return next((e for e in await run.events() if e.type is kind), None)

    event: Event = await wait_until(engine, first, timeout)
    return event


def of_type(events: list[Event], kind: EventType, cid: str | None = None) -> list[Event]:
    """The events of one kind (of one durable call, given its correlation id), in log order."""
    return [e for e in events if e.type is kind and cid in (None, e.correlation_id)]


def types(events: list[Event]) -> list[str]:
    """The kinds of the events, in log order, as strings."""
    return [e.type.value for e in events]


def fake_clock(engine: Engine) -> FakeClock:
    """The engine's fake clock (every Engine in these tests has one)."""
    clock = engine.clock
    assert isinstance(clock, FakeClock)
    return clock


async def timers_of(engine: Engine, run_id: str) -> dict[str, datetime]:
    """The run's pending timers."""
    return await engine.store.timers(run_id)


async def evicted(engine: Engine) -> int:
    """How many runs the engine's worker has evicted so far."""
    statistics = engine.statistics()
    assert statistics is not None
    return statistics.evictions


# -- a store driven by hand ---------------------------------------------------------------

T0 = datetime(2030, 1, 1, tzinfo=UTC)
"""The time store tests start at: stores are given every time, they never read a clock."""


def at(seconds: float) -> datetime:
    """A time ``seconds`` after `T0`."""
    return T0 + timedelta(seconds=seconds)


async def hold(
    store: Store,
    run_id: str = "r1",
    worker: str = "w1",
    now: datetime = T0,
    *,
    workflow: str = "wf",
) -> None:
    """Create a run of ``workflow`` and have ``worker`` claim it; fail unless it claims
    exactly that run.

    Only runs of ``workflow`` are claimed, so a test whose earlier runs are due again (a
    lapsed lease, a reaped worker) gives this run a workflow of its own.
    """
    _, created = await store.create_run(NewRun(run_id, workflow, {"args": [run_id]}), now)
    assert created, f"run {run_id!r} already exists"
    claimed = await store.claim_runs(worker, now, 100, workflows={workflow})
    assert [run.id for run in claimed] == [run_id]


async def drain(store: Store) -> None:
    """Consume pending change notifications (a store may report one write twice)."""
    while await store.wait_for_change(0.2):
        pass


async def damage(store: Store, sql: str, *values: Any) -> None:
    """Run ``sql`` (``?`` placeholders) through the store's own connection, as a row
    changed by hand, a damaged one, or one a newer release wrote (issue 11)."""
    if isinstance(store, SQLiteStore):
        await store._write(lambda conn: conn.execute(sql, values))
        return
    assert isinstance(store, PostgresStore), store
    for number in range(1, len(values) + 1):
        sql = sql.replace("?", f"${number}", 1)
    await store._db.execute(sql, *values)


def unreadable(store: Store) -> str:
    """Text a JSON column of ``store`` keeps and Python's `json` cannot read back: not
    JSON on SQLite; on PostgreSQL (whose ``json`` refuses that) JSON nested 5,000 deep,
    past Python's recursion limit."""
    return "{bad" if isinstance(store, SQLiteStore) else "[" * 5000 + "]" * 5000


# -- hook payloads for property tests ---------------------------------------------------

_BAD_TEXT = st.sampled_from(["\x00", "a\x00b", "\ud800", "x\udfff"])
"""Text JSON carries but no database keeps: a NUL, a lone surrogate."""
_GOOD_TEXT = st.text(max_size=12)
_TEXT = st.one_of(_GOOD_TEXT, _GOOD_TEXT, _GOOD_TEXT, _BAD_TEXT)  # one in four is bad


def _json(text: st.SearchStrategy[str]) -> st.SearchStrategy[Any]:
    return st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | text,
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
        max_leaves=12,
    )


_JSON = _json(_TEXT)
_GOOD_JSON = _json(_GOOD_TEXT)
_DECISIONS = st.one_of(
    st.sampled_from(["approved", "changes"]),
    st.sampled_from(["approved", "changes", "maybe", "", "APPROVED"]),
    _JSON,
)


def approval_payloads() -> st.SearchStrategy[Any]:
    """Any JSON value, objects near ``{"decision": "approved" | "changes", "notes": str
    | None}`` (a wrong or missing decision, notes of any type, extra keys, text no
    database keeps), and valid ones, a third each."""
    near = st.fixed_dictionaries(
        {},
        optional={
            "decision": _DECISIONS,
            "notes": st.one_of(st.none(), _GOOD_TEXT, _GOOD_TEXT, _TEXT, _JSON),
            "extra": st.one_of(_GOOD_JSON, _GOOD_JSON, _JSON),
        },
    )
    valid = st.fixed_dictionaries(
        {"decision": st.sampled_from(["approved", "changes"])},
        optional={"notes": st.none() | _GOOD_TEXT, "extra": _GOOD_JSON},
    )
    return st.one_of(valid, near, _JSON)


REFUSED: Any = object()
"""`approval_outcome` of a payload a resume must refuse."""


def approval_outcome(payload: Any, *, typed: bool) -> Any:
    """What resuming an approval hook with ``payload`` stores, or `REFUSED`.

    ``typed``: the resuming process defines the hook's type, and stores the payload
    encoded by it (the two fields, extra keys dropped); otherwise as given.
    """
    if not isinstance(payload, dict) or payload.get("decision") not in ("approved", "changes"):
        return REFUSED
    notes = payload.get("notes")
    if notes is not None and not isinstance(notes, str):
        return REFUSED
    stored = {"decision": payload["decision"], "notes": notes} if typed else payload
    return REFUSED if holds_bad_text(stored) else stored


def holds_bad_text(value: Any) -> bool:
    """Whether ``value`` holds, anywhere, text no database keeps (a NUL, a lone surrogate)."""
    if isinstance(value, str):
        return "\x00" in value or any("\ud800" <= char <= "\udfff" for char in value)
    if isinstance(value, list):
        return any(holds_bad_text(item) for item in value)
    if isinstance(value, dict):
        return any(holds_bad_text(k) or holds_bad_text(v) for k, v in value.items())
    return False


# -- child processes ----------------------------------------------------------------------


class ChildProcess:
    """A real process a test starts, watches and kills: ``argv``, run in ``folder``.

    Its stdout and stderr go to files in ``folder`` (``NAME.stdout``, ``NAME.stderr``),
    not to pipes: the child never stalls on a pipe nobody reads, every wait reads the
    files afresh, and `close` prints both, which pytest shows when the test fails. Only
    whole lines count, so a line the child is still writing is never read in half. Its
    stdin is a pipe: `finish` closes it, which children that read stdin take as the sign
    to exit.

    Every wait polls (`eventually`) every ``every`` seconds, for ``timeout`` seconds
    unless told otherwise.
    """

    def __init__(
        self,
        name: str,
        argv: list[str],
        folder: Path,
        *,
        env: dict[str, str] | None = None,
        every: float = 0.02,
        timeout: float = 20.0,
    ) -> None:
        self.name = name
        self.argv = argv
        self.every = every
        self.timeout = timeout
        stem, n = name, 1
        while (folder / f"{stem}.stdout").exists():  # a second child of the same name
            n += 1
            stem = f"{name}-{n}"
        self.stdout_path = folder / f"{stem}.stdout"
        self.stderr_path = folder / f"{stem}.stderr"
        with self.stdout_path.open("w") as out, self.stderr_path.open("w") as err:
            self.process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=out, stderr=err, env=env, cwd=folder
            )
        self.pid = self.process.pid

    def stdout(self) -> str:
        return self.stdout_path.read_text()

    def stderr(self) -> str:
        return self.stderr_path.read_text()

    def lines(self) -> list[str]:
        """The whole lines printed so far (a last one without its newline is left out)."""
        return self.stdout().split("\n")[:-1]

    async def _poll(self, condition: Callable[[], T | None], what: str, timeout: float | None) -> T:
        async def check() -> T | None:
            return condition()

        return await eventually(
            check, f"{self.name} {what}", timeout or self.timeout, every=self.every
        )

    async def line(self, prefix: str = "", timeout: float | None = None) -> str:
        """The first line that starts with ``prefix`` (the first line, without one), once
        it is printed."""
        return await self._poll(
            lambda: next((line for line in self.lines() if line.startswith(prefix)), None),
            f"to print a line starting with {prefix!r}",
            timeout,
        )

    async def printed(self, text: str, timeout: float | None = None) -> None:
        """Wait until stdout contains ``text``."""
        await self._poll(lambda: text in self.stdout(), f"to print {text!r}", timeout)

    async def logged(self, text: str, timeout: float | None = None) -> None:
        """Wait until stderr (where perdure logs) contains ``text``."""
        await self._poll(lambda: text in self.stderr(), f"to log {text!r}", timeout)

    async def exit_code(self, timeout: float | None = None) -> int:
        """Wait for the process to exit; its exit code."""

        def code() -> tuple[int] | None:
            returncode = self.process.poll()
            return None if returncode is None else (returncode,)

        (returncode,) = await self._poll(code, "to exit", timeout)
        return returncode

    async def finish(self, timeout: float | None = None) -> int:
        """Close its stdin (the sign to exit) and wait for its exit code."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        return await self.exit_code(timeout)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def signal(self, signum: signal.Signals) -> None:
        os.kill(self.pid, signum)

    def kill(self) -> None:
        """SIGKILL the process (stopped or not) if it still runs, and reap it: no cleanup
        runs, as in a crash."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def close(self) -> None:
        """Kill the process and print what it said (pytest shows it when a test fails)."""
        self.kill()
        if self.process.stdin is not None:
            self.process.stdin.close()
        print(f"--- {self.name} (pid {self.pid}, exit {self.process.returncode}): {self.argv}")
        print(self.stdout(), self.stderr(), sep="\n")
