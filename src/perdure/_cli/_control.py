"""Commands that steer runs: ``cancel``, ``resume-hook``, ``rerun``, ``fork``, ``unblock``."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.text import Text

from perdure._cli._common import (
    USAGE,
    CliError,
    DatabaseUrl,
    JsonFlag,
    Modules,
    engine,
    import_modules,
    reporting,
    resolve_url,
    run,
)
from perdure._cli._output import err, error, note, out, print_json
from perdure._errors import HookNotFoundError, RunNotFoundError
from perdure._fork import UnknownStepError
from perdure._hooks import lookup_hook, unstorable
from perdure._log import HookCreated
from perdure._records import RunStatus
from perdure._workflow import lookup_workflow

if TYPE_CHECKING:
    from perdure._engine import Engine
    from perdure._records import JSON, RunRecord

__all__ = ["cancel", "fork", "rerun", "resume_hook"]

_PROGRESS_FROM = 5
"""Cancelling at least this many runs shows a progress bar (on a terminal)."""


def _cancel_outcome(before: RunRecord | None, after: RunRecord | None) -> str:
    """What a cancel request did: the ``result`` that --json prints."""
    if before is None or after is None:
        return "unknown"
    if before.status.is_terminal:
        return f"already_{before.status.value}"
    return "cancelled" if after.status is RunStatus.CANCELLED else "requested"


_FAILED = frozenset({"already_completed", "already_failed"})
"""Results that are a failed operation (exit 1): the run ended before it could be cancelled."""

_MESSAGES = {
    "unknown": "no run with id {id!r}",
    "already_cancelled": "{id}: already cancelled",
    "already_completed": "{id}: already completed; not cancelled",
    "already_failed": "{id}: already failed; not cancelled",
    "cancelled": "{id}: cancelled",
    "requested": "{id}: cancel requested; the run stops at its next await",
}


def cancel(
    run_ids: Annotated[
        list[str], typer.Argument(metavar="RUN", help="The ids of the runs to cancel.")
    ],
    as_json: JsonFlag = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Cancel runs.

    A pending run is cancelled at once; a running one at its next await (its hooks are
    disposed and timers removed). Exit 1 if a run had already completed or failed,
    2 if an id is unknown.
    """
    url = resolve_url(database_url)
    ids = list(dict.fromkeys(run_ids))

    async def one(steering: Engine, run_id: str) -> dict[str, JSON]:
        before: RunRecord | None = None
        after: RunRecord | None = None
        with contextlib.suppress(RunNotFoundError):  # both stay None: "unknown"
            before = (await steering.get_run(run_id)).record
            after = await steering.cancel(run_id)
        result = _cancel_outcome(before, after)
        status = after.status.value if after is not None else None
        return {"id": run_id, "result": result, "status": status}

    async def main() -> list[dict[str, JSON]]:
        results: list[dict[str, JSON]] = []
        console = err()
        progress = Progress(
            TextColumn("cancelling"),
            BarColumn(),
            MofNCompleteColumn(),
            console=console,
            transient=True,
            disable=len(ids) < _PROGRESS_FROM or not console.is_terminal,
        )
        async with engine(url) as steering:
            with progress:
                task = progress.add_task("cancel", total=len(ids))
                for run_id in ids:
                    outcome = await one(steering, run_id)
                    results.append(outcome)
                    if not as_json:
                        _report_cancel(outcome)
                    progress.advance(task)
        return results

    results = run(main())
    if as_json:
        print_json(results)
    if any(r["result"] == "unknown" for r in results):
        raise typer.Exit(USAGE)
    if any(r["result"] in _FAILED for r in results):
        raise typer.Exit(1)


def _report_cancel(outcome: dict[str, JSON]) -> None:
    result = str(outcome["result"])
    message = _MESSAGES.get(result, "{id}: " + result).format(id=outcome["id"])
    if result == "unknown" or result in _FAILED:
        error(message)
    else:
        out().print(Text(message, style="magenta" if result == "cancelled" else ""))


def _read_data(data: str) -> JSON:
    """The ``--data`` payload: JSON text, or a file's (``@path``, ``@-`` for stdin).

    Every way it can be unreadable (no such file, bytes that are not UTF-8, text that is
    not JSON, NaN, nesting deeper than the parser goes) is wrong usage: exit 2, one line.
    """
    source = "--data"
    text = data
    if data.startswith("@"):
        name = data[1:]
        source = "standard input" if name == "-" else name
        try:
            raw = sys.stdin.buffer.read() if name == "-" else Path(name).read_bytes()
        except OSError as exc:
            raise CliError(
                f"cannot read --data file {name}: {exc.strerror or exc}", USAGE
            ) from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CliError(
                f"{source} is not UTF-8 text: byte {exc.start} is {raw[exc.start : exc.end]!r}",
                USAGE,
            ) from None
    try:
        return json.loads(text, parse_constant=_no_constants)
    except RecursionError:
        raise CliError(f"{source} is not valid JSON: nested too deeply", USAGE) from None
    except ValueError as exc:  # JSONDecodeError, and NaN or Infinity (_no_constants)
        raise CliError(f"{source} is not valid JSON: {exc}", USAGE) from None


def _no_constants(name: str) -> JSON:
    """Refuse ``NaN`` and the infinities, which Python reads but JSON has not."""
    raise ValueError(f"{name} is not JSON")


def resume_hook(
    token: Annotated[
        str,
        typer.Argument(
            metavar="TOKEN", help="The token of the live hook to resume.", show_default=False
        ),
    ],
    data: Annotated[
        str,
        typer.Option(
            "--data",
            "-d",
            metavar="JSON|@FILE",
            show_default=False,
            help="The payload: JSON text, or @path to read it from a file (@- for stdin).",
        ),
    ],
    modules: Modules = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Send a payload to the live hook holding TOKEN, waking its run.

    The payload must pass the JSON Schema the run stored with its hook, and, when a
    --module defines the hook, its type too (exit 1 naming the field if it fails;
    nothing is written). A hook created by an older perdure has no stored schema:
    without --module, its JSON is stored as given. Exit 2 for bad JSON or a token no
    live hook holds.
    """
    url = resolve_url(database_url)
    with reporting():
        payload = _read_data(data)
        import_modules(modules or [])

    async def main() -> None:
        async with engine(url) as steering:
            try:
                # Read first only to say whether it was checked: the hook may go after.
                # (A token no store can hold, say undecodable argv bytes, is never read.)
                storable = unstorable(token, "token") is None
                created = await steering.store.hook_event(token) if storable else None
                schema = created is not None and HookCreated.of(created).schema is not None
                hook = await steering.resume_hook(token, payload)
            except HookNotFoundError:
                raise CliError(f"no live hook holds token {token!r}", USAGE) from None
            except ValueError as exc:
                raise CliError(str(exc)) from None
        if lookup_hook(hook.name) is None and not schema:
            note(
                f"hook {hook.name!r} is not defined by any --module and its run stored no "
                "schema (an older perdure made it), so the payload was not validated; it "
                "was stored as given"
            )
        out().print(f"resumed hook {hook.name!r} (token {token!r}) of run {hook.run_id}")

    run(main())


def unblock(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The blocked run to try again.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Try a blocked run again now: a worker that defines its workflow replays it.

    It continues, or blocks again with a new reason (``perdure show RUN``). A run that
    is not blocked is left as it is (exit 1). Exit 2 if the id is unknown.
    """
    url = resolve_url(database_url)

    async def main() -> RunRecord:
        async with engine(url) as steering:
            try:
                before = (await steering.get_run(run_id)).record
                after = await steering.unblock(run_id)
            except RunNotFoundError as exc:
                raise CliError(str(exc), USAGE) from None
        if before.status is not RunStatus.BLOCKED:
            raise CliError(f"{run_id}: not blocked ({before.status.value}); left as it is")
        return after

    record = run(main())
    out().print(f"{record.id}: unblocked; due now ({record.status.value})")


def rerun(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run to start again.")],
    modules: Modules = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Start a new run of the same workflow with the same input; print its id.

    The new run records the version of the workflow a --module defines (the latest
    code), else the original run's version. A worker serving the workflow runs it.
    """
    url = resolve_url(database_url)
    with reporting():
        import_modules(modules or [])

    async def main() -> str:
        async with engine(url) as steering:
            try:
                record = (await steering.rerun(run_id)).record
            except RunNotFoundError as exc:
                raise CliError(str(exc), USAGE) from None
        if modules and lookup_workflow(record.workflow) is None:
            note(
                f"no --module defines workflow {record.workflow!r}; the new run "
                "records the original run's version",
                label="warning",
            )
        note(
            f"started run {record.id} of workflow {record.workflow!r} "
            f"(version {record.version or '-'}), a re-run of {run_id}",
            label="rerun",
        )
        return record.id

    new_id = run(main())
    sys.stdout.write(new_id + "\n")


def fork(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run to fork.")],
    from_step: Annotated[
        str,
        typer.Option(
            "--from-step",
            metavar="ID",
            help="The step to run again, and all after it: a step id such as charge#1 "
            "(perdure show RUN lists them).",
        ),
    ],
    modules: Modules = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Start a new run with RUN's log up to a step, then today's code; print its id.

    The steps before --from-step are not executed again: the new run replays their
    recorded results. The new run records the version of the workflow a --module
    defines, else the original run's. Exit 2 for an unknown run or step id, 1 when the
    fork is refused (a hook of RUN is live at that point).
    """
    url = resolve_url(database_url)
    with reporting():
        import_modules(modules or [])

    async def main() -> str:
        async with engine(url) as steering:
            try:
                record = (await steering.fork(run_id, from_step=from_step)).record
            except (RunNotFoundError, UnknownStepError) as exc:
                raise CliError(str(exc), USAGE) from None
            except ValueError as exc:
                raise CliError(str(exc)) from None
        note(
            f"started run {record.id} of workflow {record.workflow!r} "
            f"(version {record.version or '-'}), a fork of {run_id} from {from_step}",
            label="fork",
        )
        return record.id

    new_id = run(main())
    sys.stdout.write(new_id + "\n")
