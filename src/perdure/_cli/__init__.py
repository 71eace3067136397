"""The ``perdure`` command line, built on Typer and rich (see `perdure.cli`).

- `_app`: the Typer application and ``main``;
- `_common`: errors and exit codes, opening the database, importing user modules;
- `_output`: consoles, formatting, the JSON shapes;
- `_inspect`: ``runs``, ``show``, ``events``, ``hooks``; `_timeline` draws ``show``;
- `_stream`: ``stream`` (follow a run's durable stream);
- `_stats`: ``stats`` (the aggregates of the dashboard's Metrics page);
- `_control`: ``cancel``, ``resume-hook``, ``rerun``, ``fork``, ``unblock``;
- `_deploy`: ``check-replay`` and ``export``, what to run before a deploy;
- `_limits`: ``limits`` (the concurrency and rate limits in use);
- `_serve`: ``worker``, and `_supervisor` its ``--processes N``; `_workers`:
  ``workers`` (the live ones); `_web`: ``web`` (the dashboard and the HTTP API),
  served as `_uvicorn` says (limits, a request-head deadline, tokens kept out of the
  access log);
- `_migrate`: ``migrate`` (apply schema migrations as a deploy step).
- `_schedules`: ``schedules`` (list, pause, resume, trigger, backfill, delete).
"""

from __future__ import annotations

from perdure._cli._app import app, main
from perdure._cli._control import cancel, fork, rerun, resume_hook, unblock
from perdure._cli._deploy import check_replay, export
from perdure._cli._inspect import events, hooks, runs, show
from perdure._cli._limits import limits
from perdure._cli._migrate import migrate
from perdure._cli._schedules import schedules_app
from perdure._cli._serve import worker
from perdure._cli._stats import stats
from perdure._cli._stream import stream
from perdure._cli._web import web
from perdure._cli._workers import workers

__all__ = ["app", "main"]

# In the order `perdure --help` lists them.
app.command()(worker)
app.command()(workers)
app.command()(limits)
app.command()(runs)
app.command()(show)
app.command()(events)
app.command()(hooks)
app.command()(stream)
app.command()(stats)
app.command()(cancel)
app.command("resume-hook")(resume_hook)
app.command()(rerun)
app.command()(fork)
app.command()(unblock)
app.command("check-replay")(check_replay)
app.command()(export)
app.command()(web)
app.command()(migrate)
app.add_typer(schedules_app, name="schedules")
