"""``perdure stream RUN [NAME] [--from N]``: print a run's durable stream, following it.

It reads the stream as ``GET /runs/{id}/streams/{name}`` sends it
(`perdure._stream_reader.follow`) and returns when the stream is closed or the run
ended. Text chunks are printed as they come, run together, as a model's tokens are;
any other value as JSON on a line of its own. A retraction (a failed step attempt's
chunks are void) is said on stderr. With ``--json``, one JSON object a line instead:
``{"index": i, "value": v}`` or ``{"index": i, "retracted": [...], "step": ...,
"attempt": ...}``. Values are printed as stored, so no module needs importing.
"""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer

from perdure._chunks import check_stream_name
from perdure._cli._common import (
    USAGE,
    CliError,
    DatabaseUrl,
    engine,
    resolve_url,
    run,
)
from perdure._cli._output import note
from perdure._errors import RunNotFoundError
from perdure._stream_reader import follow, retraction_of

__all__ = ["stream"]


def stream(
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="The run's id.")],
    name: Annotated[str, typer.Argument(metavar="NAME", help="The stream's name.")] = "default",
    start: Annotated[
        int,
        typer.Option(
            "--from",
            metavar="N",
            help="Start at index N; below 0, counted from the end (-10: the last ten).",
        ),
    ] = 0,
    committed: Annotated[
        bool,
        typer.Option(
            "--committed",
            help="Only chunks of the workflow body and of step attempts that succeeded.",
        ),
    ] = False,
    as_json: Annotated[
        bool, typer.Option("--json", help="One JSON object a line (for scripts).")
    ] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Print a run's durable stream, following it live until it ends.

    Ends when the stream is closed or the run ended; Ctrl-C stops it sooner.
    """
    url = resolve_url(database_url)

    async def main() -> None:
        try:
            check_stream_name(name)
        except ValueError as exc:
            raise CliError(str(exc), USAGE) from None
        async with engine(url) as running:
            try:
                handle = await running.get_run(run_id)
            except RunNotFoundError:
                raise CliError(f"no run with id {run_id!r}", USAGE) from None
            text_open = False  # the last thing printed was text without its newline
            rows = follow(running, handle.id, name, start=start, committed=committed)
            async for row in rows:
                if row.kind == "retraction":
                    notice = retraction_of(row)
                    if as_json:
                        _line(
                            {
                                "index": notice.index,
                                "retracted": list(notice.indices),
                                "step": notice.step,
                                "attempt": notice.attempt,
                            }
                        )
                        continue
                    if text_open:
                        sys.stdout.write("\n")
                        text_open = False
                    sys.stdout.flush()
                    note(
                        f"attempt {notice.attempt} of {notice.step} failed: chunks "
                        f"{_indices(notice.indices)} are retracted",
                        label="retracted",
                    )
                elif as_json:
                    _line({"index": row.index, "value": row.value})
                elif isinstance(row.value, str):
                    sys.stdout.write(row.value)
                    sys.stdout.flush()
                    text_open = not row.value.endswith("\n")
                else:
                    if text_open:
                        sys.stdout.write("\n")
                    _line(row.value)
                    text_open = False
            if text_open:
                sys.stdout.write("\n")
                sys.stdout.flush()

    try:
        run(main())
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _line(value: object) -> None:
    sys.stdout.write(json.dumps(value, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def _indices(indices: tuple[int, ...]) -> str:
    if len(indices) > 1 and list(indices) == list(range(indices[0], indices[-1] + 1)):
        return f"{indices[0]}-{indices[-1]}"
    return ", ".join(map(str, indices)) or "(none)"
