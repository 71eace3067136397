-- The first schema of perdure's SQLite store.
--
-- Times are INTEGER microseconds since 1970-01-01 UTC: they sort as numbers, compare
-- in indexes without parsing, and turn back into exact timezone-aware datetimes.
-- JSON values are compact TEXT (json.dumps); SQL NULL means "no value", while a JSON
-- null is stored as the text 'null'.

-- One row per run: an index over its log, written in the same transaction as the log.
-- owner is the worker holding the run; wake_at (NULL while held or ended) is when an
-- unheld run becomes claimable; last_seq lets an append number its events without
-- reading the log.
CREATE TABLE runs (
    id                  TEXT PRIMARY KEY,
    workflow            TEXT NOT NULL,
    status              TEXT NOT NULL,
    input               TEXT NOT NULL,
    output              TEXT,
    error               TEXT,
    version             TEXT,
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    started_at          INTEGER,
    completed_at        INTEGER,
    owner               TEXT,
    wake_at             INTEGER,
    cancel_requested_at INTEGER,
    last_seq            INTEGER NOT NULL
);

-- Claiming and next_wake_at: only unheld, unended runs are in it, by due time.
CREATE INDEX runs_claimable ON runs (wake_at, id) WHERE owner IS NULL AND wake_at IS NOT NULL;
-- A worker's runs: inbox, cancel requests, release on unregister or death.
CREATE INDEX runs_owner ON runs (owner) WHERE owner IS NOT NULL;
-- Listings, newest first, whole or by status or workflow.
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_status_created ON runs (status, created_at, id);
CREATE INDEX runs_workflow_created ON runs (workflow, created_at, id);

-- The log: the truth every other table indexes.
CREATE TABLE events (
    run_id         TEXT NOT NULL,
    seq            INTEGER NOT NULL,
    type           TEXT NOT NULL,
    correlation_id TEXT,
    data           TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- A step call's latest state; first_seq orders the steps as they were first logged.
CREATE TABLE steps (
    run_id         TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    status         TEXT NOT NULL,
    attempt        INTEGER NOT NULL,
    input          TEXT,
    output         TEXT,
    error          TEXT,
    started_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    first_seq      INTEGER NOT NULL,
    PRIMARY KEY (run_id, correlation_id)
);

-- Sleeps started and not yet completed.
CREATE TABLE timers (
    run_id         TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    wake_at        INTEGER NOT NULL,
    PRIMARY KEY (run_id, correlation_id)
);

-- Live hooks; the primary key makes a token unique among them.
CREATE TABLE hooks (
    token          TEXT PRIMARY KEY,
    run_id         TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    name           TEXT NOT NULL,
    kind           TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX hooks_run ON hooks (run_id);

-- Payloads resume_hook accepted that the holding worker has not logged yet.
-- AUTOINCREMENT: an id is never reused, so consuming a stale id cannot delete a newer item.
CREATE TABLE hook_inbox (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         TEXT NOT NULL,
    token          TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    payload        TEXT NOT NULL,
    created_at     INTEGER NOT NULL
);
CREATE INDEX hook_inbox_run ON hook_inbox (run_id, id);

-- Live workers; each also holds an OS lock on <database>.workers/<id>.lock.
CREATE TABLE workers (
    id           TEXT PRIMARY KEY,
    pid          INTEGER NOT NULL,
    hostname     TEXT NOT NULL,
    started_at   INTEGER NOT NULL,
    heartbeat_at INTEGER NOT NULL
);
