"""The soak's verdict (`soak.py`): the side-effect files and the database, against the journal.

What is checked, once the soak has drained (no more runs started, no more faults, every
worker up, the server up):

- **nothing lost**: every start the API accepted is a run in the database, and every
  resume it accepted is a ``hook_received`` with that payload in the run's log;
- **nothing stuck**: every run has ended, or still waits on a hook nobody resumed or
  a sleep not yet due;
- **right outcomes**: a completed run returned what its input predicts; no run
  failed; a run whose cancel was stored before it ended ended ``cancelled``, and began
  no step more than `CANCEL_SLACK` after the cancel was acknowledged; no run was
  cancelled that nobody cancelled; an invalid payload was refused, never stored;
- **no step recorded twice** in a log (two outcomes for one step, one attempt
  started twice, two ends of one run);
- **every re-execution explained**: a step attempt that began more than once (its
  side-effect line seen twice) where the log shows no retry between the two is
  explained by a fault: the first process was killed or frozen after it began, or the
  server was restarted while it was in flight. A process that began it again soon
  after being thawed is the defect of issue 10 section 1 (a frozen worker beginning work
  for a run it lost), not an explanation;
- **callers rode out the restarts**: the public API raised nothing but perdure's
  own errors (a raw driver exception is issue 10 section 4), and no worker exited when
  no fault asked it to.
"""

from __future__ import annotations

import itertools
import json
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from benchlib import percentile
from soak_cluster import Fault
from soak_traffic import Cancelled, Journal, Started
from soak_workflows import expected

from perdure import Event, EventType, RunRecord, RunStatus

CANCEL_SLACK = 1.0
"""Seconds after a cancel is acknowledged during which a step may still begin: the one
whose predecessor's result was committed just before the cancel (see _runtime/_actor.py)."""


@dataclass(frozen=True, slots=True)
class Effect:
    """A side-effect line: a step attempt began."""

    run: str
    step: str
    attempt: int
    pid: int
    at: float


def read_effects(folder: Path) -> list[Effect]:
    """Every side-effect line of every process, oldest first (a torn last line is skipped)."""
    found = []
    for path in sorted((folder / "effects").glob("*.log")):
        for line in path.read_text().splitlines():
            parts = line.split(" ")
            if len(parts) == 5:
                run, step, attempt, pid, at = parts
                found.append(Effect(run, step, int(attempt), int(pid), float(at)))
    return sorted(found, key=lambda e: e.at)


@dataclass
class Database:
    """What the checks read from the database at the end."""

    runs: dict[str, RunRecord]
    events: dict[str, list[Event]]
    live_hooks: set[str]
    """Run ids with a live hook."""
    pending_timers: set[str]
    """Run ids with a timer due after the end."""


@dataclass
class Verdict:
    violations: list[str] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)
    reexecutions: Counter[str] = field(default_factory=Counter)


def _payload_nonces(events: list[Event]) -> set[str]:
    text = [json.dumps(e.data.get("payload")) for e in events if e.type is EventType.HOOK_RECEIVED]
    return {part for blob in text for part in blob.replace('"', " ").split()}


def check_resumes(journal: Journal, db: Database, verdict: Verdict) -> None:
    """Every accepted resume is in its run's log; no invalid payload was accepted."""
    for resume in journal.resumed:
        nonces = _payload_nonces(db.events.get(resume.run_id, []))
        if resume.outcome == "accepted" and resume.nonce not in nonces:
            verdict.violations.append(
                f"resume lost: {resume.via} resume of {resume.run_id} ({resume.nonce})"
            )
    for refused in journal.refused:
        if refused.code == 0:
            verdict.violations.append(
                f"invalid payload accepted (issue 10 section 2): `perdure resume-hook` of "
                f"{refused.run_id} exited 0 for a decision the schema refuses"
            )


def check_runs(journal: Journal, db: Database, verdict: Verdict) -> None:
    """Nothing lost or stuck, right outcomes, cancels honoured, nothing logged twice."""
    decisions: dict[str, set[str]] = defaultdict(set)
    for resume in journal.resumed:
        decisions[resume.run_id].add(resume.decision)
    cancelled = {c.run_id: c for c in journal.cancelled}
    for run_id, started in journal.started.items():
        record = db.runs.get(run_id)
        if record is None:
            verdict.violations.append(f"lost: accepted start of {run_id} is not in the database")
        elif not record.status.is_terminal:
            if run_id in db.live_hooks and not decisions[run_id]:
                continue  # waits on a hook nobody resumed
            if run_id not in db.pending_timers:  # else waits on a sleep not yet due
                verdict.violations.append(
                    f"stuck: {run_id} ({started.workflow}) is {record.status.value}"
                )
        else:
            problem = outcome_problem(started, record, decisions[run_id], cancelled.get(run_id))
            if problem:
                verdict.violations.append(problem)
    for run_id, events in db.events.items():
        check_log(run_id, events, verdict.violations)


def outcome_problem(
    started: Started, record: RunRecord, decisions: set[str], cancel: Cancelled | None
) -> str | None:
    """What is wrong with how a run ended, if anything."""
    run_id = started.run_id
    if cancel is not None and cancel.status in {"pending", "running"}:
        if record.status is not RunStatus.CANCELLED:
            return (
                f"cancel lost (issue 10 section 0): {run_id}'s cancel was stored while it "
                f"was {cancel.status}, and it ended {record.status.value}"
            )
        return None
    if record.status is RunStatus.FAILED:
        return f"failed: {run_id} ({started.workflow}): {(record.error or {}).get('message')}"
    if record.status is RunStatus.CANCELLED and cancel is None:
        return f"cancelled, but nobody cancelled it: {run_id}"
    if record.status is not RunStatus.COMPLETED:
        return None
    if started.workflow == "soak-approval":
        right = record.output in decisions
    else:
        right = record.output == expected(started.workflow, started.args)
    return None if right else f"wrong result: {run_id} returned {record.output!r}"


def check_log(run_id: str, events: list[Event], bad: list[str]) -> None:
    """No step outcome, step attempt or run end recorded twice in one log."""
    outcomes = Counter(
        e.correlation_id
        for e in events
        if e.type in {EventType.STEP_COMPLETED, EventType.STEP_FAILED}
    )
    attempts = Counter(
        (e.correlation_id, e.data.get("attempt"))
        for e in events
        if e.type is EventType.STEP_STARTED
    )
    ends = [
        e
        for e in events
        if e.type in {EventType.RUN_COMPLETED, EventType.RUN_FAILED, EventType.RUN_CANCELLED}
    ]
    for cid, count in outcomes.items():
        if count > 1:
            bad.append(f"twice in the log: {run_id} {cid} has {count} outcomes")
    for (cid, attempt), count in attempts.items():
        if count > 1:
            bad.append(f"twice in the log: {run_id} {cid} attempt {attempt} started {count}x")
    if len(ends) > 1:
        bad.append(f"twice in the log: {run_id} ended {len(ends)} times")
    if sum(e.type is EventType.RUN_STARTED for e in events) > 1:
        bad.append(f"twice in the log: {run_id} has more than one run_started")


def check_late_steps(
    journal: Journal, effects: list[Effect], faults: list[Fault], verdict: Verdict
) -> None:
    """No step began well after its run's cancel was acknowledged."""
    stored = {c.run_id: c.at for c in journal.cancelled if c.status in {"pending", "running"}}
    for effect in effects:
        at = stored.get(effect.run)
        if at is None or effect.at <= at + CANCEL_SLACK:
            continue
        thawed = [
            f for f in faults if f.kind == "stop" and f.pid == effect.pid and f.began <= effect.at
        ]
        why = " by a worker thawed after SIGSTOP (issue 10 section 1)" if thawed else ""
        verdict.violations.append(
            f"step after cancel (issue 10 section 0): {effect.run} {effect.step} began "
            f"{effect.at - at:.2f}s after its cancel was stored{why}"
        )


def _retried(events: list[Event], step: str, attempt: int) -> bool:
    """Whether the log records attempt ``attempt`` of ``step`` as failed and retried."""
    return any(
        e.type is EventType.STEP_RETRYING
        and e.correlation_id == step
        and e.data.get("attempt") == attempt
        for e in events
    )


def _started(events: list[Event], step: str, attempt: int) -> int:
    """How many ``step_started`` of that attempt of ``step`` the log holds."""
    return sum(
        e.type is EventType.STEP_STARTED
        and e.correlation_id == step
        and e.data.get("attempt") == attempt
        for e in events
    )


def explain(prev: Effect, cur: Effect, faults: list[Fault], lease: float) -> tuple[str, bool]:
    """Why the step attempt ``prev`` began again as ``cur``: a label, and whether a fault
    explains it."""
    for fault in faults:
        after_prev = prev.at <= fault.began <= cur.at
        if fault.kind == "kill" and fault.pid == prev.pid and after_prev:
            return "kill of the first process", True
        if fault.kind == "stop" and fault.pid == prev.pid and after_prev:
            return "SIGSTOP of the first process", True
    for fault in faults:
        # In flight while the server was down, or failing on a connection that died
        # with it, up to a lease after it came back.
        if fault.kind == "restart" and prev.at <= fault.ended + lease and cur.at >= fault.began:
            return "server restart", True
    for fault in faults:
        for one in (prev, cur):
            thawed = fault.kind == "stop" and fault.pid == one.pid
            if thawed and fault.began <= one.at <= fault.ended + 2 * lease:
                return "begun by a worker thawed after SIGSTOP (issue 10 section 1)", False
    for fault in faults:
        if fault.kind == "term" and fault.pid == prev.pid and after_sigterm(prev, cur, fault):
            return "after a SIGTERM of the first process (its grace should have covered it)", False
    return "no fault near it", False


def after_sigterm(prev: Effect, cur: Effect, fault: Fault) -> bool:
    return prev.at <= fault.ended and cur.at >= fault.began


def check_reexecutions(
    effects: list[Effect], db: Database, faults: list[Fault], lease: float, verdict: Verdict
) -> None:
    """Each step attempt begun again without a logged retry between is explained by a fault."""
    calls: dict[tuple[str, str], list[Effect]] = defaultdict(list)
    for effect in effects:
        calls[effect.run, effect.step].append(effect)
    for (run, step), began in calls.items():
        events = db.events.get(run, [])
        for prev, cur in itertools.pairwise(began):
            if _retried(events, step, prev.attempt):
                verdict.reexecutions["a retry the log records (not a re-execution)"] += 1
                continue
            if prev.attempt == cur.attempt and _started(events, step, cur.attempt) > 1:
                # Both copies passed the fence and logged the same attempt: two live
                # copies of the run at once, whatever fault came near.
                label, ok = "two copies of the run logged the same attempt", False
            else:
                label, ok = explain(prev, cur, faults, lease)
            verdict.reexecutions[label] += 1
            if not ok:
                verdict.violations.append(
                    f"unexplained re-execution: {run} {step} began in pid {prev.pid} at "
                    f"{prev.at:.3f} (attempt {prev.attempt}) and again in pid {cur.pid} at "
                    f"{cur.at:.3f} (attempt {cur.attempt}): {label}"
                )


def check_callers(journal: Journal, findings: list[str], verdict: Verdict) -> None:
    """The public API raised only perdure's errors; workers exited only when told to."""
    for what, count in journal.caller_errors.items():
        call, _, kind = what.partition(": ")
        if not call.endswith("CLI") and not kind.startswith("perdure"):
            verdict.violations.append(
                f"caller error (issue 10 section 4): {call} raised {kind} {count}x"
            )
    verdict.violations.extend(f"gave up: {line}" for line in journal.gave_up)
    verdict.violations.extend(f"worker: {line}" for line in findings)


def figures(
    journal: Journal, effects: list[Effect], db: Database, faults: list[Fault], verdict: Verdict
) -> None:
    """The soak's figures, as lines of text."""
    say = verdict.figures.append
    by_workflow = Counter(s.workflow for s in journal.started.values())
    statuses = Counter(r.status.value for r in db.runs.values())
    say(f"runs started: {len(journal.started)} ({_counts(by_workflow)})")
    say(f"runs at the end: {_counts(statuses)}")
    events = [e for log in db.events.values() for e in log]
    kinds = Counter(e.type for e in events)
    calls = {(e.run, e.step) for e in effects}
    say(
        f"steps: {len(effects)} attempts began (side-effect lines), {len(calls)} step calls; "
        f"logged: {kinds[EventType.STEP_COMPLETED]} completed, "
        f"{kinds[EventType.STEP_RETRYING]} retried, {kinds[EventType.STEP_FAILED]} failed"
    )
    by_kind = Counter(f.kind for f in faults)
    say(f"faults: {_counts(by_kind) or 'none'}")
    for fault in faults:
        if fault.kind == "restart":
            say(f"  restart at +{fault.began - journal.began:.0f}s: {fault.detail}")
    say(f"re-executions and retries: {_counts(verdict.reexecutions) or 'none'}")
    resumes = Counter(f"{r.via} {r.outcome}" for r in journal.resumed)
    refused = Counter("refused" if r.code else "ACCEPTED" for r in journal.refused)
    say(f"hooks resumed: {_counts(resumes)}; invalid payloads sent: {_counts(refused) or 'none'}")
    asked = Counter(c.status for c in journal.cancelled)
    ended = Counter(
        db.runs[c.run_id].status.value for c in journal.cancelled if c.run_id in db.runs
    )
    say(f"cancels: {len(journal.cancelled)} (run then: {_counts(asked)}; ended: {_counts(ended)})")
    say(f"caller errors: {_counts(journal.caller_errors) or 'none'}")
    for workflow in sorted(by_workflow):
        took = [
            (r.completed_at - r.created_at).total_seconds()
            for r in db.runs.values()
            if r.workflow == workflow and r.status is RunStatus.COMPLETED and r.completed_at
        ]
        if took:
            say(
                f"latency {workflow}: p50 {percentile(took, 0.5):.2f}s, "
                f"p99 {percentile(took, 0.99):.2f}s, max {max(took):.2f}s ({len(took)} completed)"
            )


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{key} {count}" for key, count in counter.most_common())


def judge(
    journal: Journal,
    effects: list[Effect],
    db: Database,
    faults: list[Fault],
    findings: list[str],
    lease: float,
) -> Verdict:
    """Every check, and the figures."""
    verdict = Verdict()
    check_runs(journal, db, verdict)
    check_resumes(journal, db, verdict)
    check_late_steps(journal, effects, faults, verdict)
    check_reexecutions(effects, db, faults, lease, verdict)
    check_callers(journal, findings, verdict)
    figures(journal, effects, db, faults, verdict)
    return verdict
