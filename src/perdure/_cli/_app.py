"""The Typer application the commands register on."""

from __future__ import annotations

from typing import Annotated

import typer

import perdure

__all__ = ["app", "main"]

app = typer.Typer(
    name="perdure",
    help="Durable workflows for Python: run workers, and inspect and steer runs.\n\n"
    "Every command reads the database given by --database-url, else "
    "$PERDURE_DATABASE_URL, else sqlite:///.perdure/perdure.db. Exit codes: 0 success, "
    "1 a failed operation, 2 wrong usage or an unknown run id or token.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"perdure {perdure.__version__}")
        raise typer.Exit


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    del version


def main() -> None:
    """Run the command line (the ``perdure`` script and ``python -m perdure``)."""
    app(prog_name="perdure")
