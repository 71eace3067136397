-- Schedules stored in the database (issue 15): one row per schedule, read by every
-- worker that defines its workflow. next_fire_at is the earliest tick not yet handled
-- (NULL once past end_at); the worker that handles it moves it on with a
-- compare-and-set, and the run a tick starts has an id derived from the schedule and
-- the tick, so workers racing on one tick start one run. Times are microseconds since
-- the epoch, input is the runs' encoded arguments, as in the runs table.
CREATE TABLE schedules (
    id           TEXT PRIMARY KEY,
    workflow     TEXT NOT NULL,
    cron         TEXT NOT NULL,
    tz           TEXT NOT NULL,
    input        TEXT NOT NULL,
    overlap      TEXT NOT NULL,
    catchup      TEXT NOT NULL,
    start_at     INTEGER,
    end_at       INTEGER,
    paused       INTEGER NOT NULL DEFAULT 0,
    next_fire_at INTEGER,
    last_tick_at INTEGER,
    last_run_id  TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
) WITHOUT ROWID;

-- Workers ask for the due schedules, and the next fire time, at every pass.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE paused = 0;
