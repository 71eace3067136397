-- Schedules stored in the database (issue 15): one row per schedule, read by every
-- worker that defines its workflow. next_fire_at is the earliest tick not yet handled
-- (NULL once past end_at); the worker that handles it moves it on with a
-- compare-and-set, and the run a tick starts has an id derived from the schedule and
-- the tick, so workers racing on one tick start one run. input is the runs' encoded
-- arguments, as in the runs table.
CREATE TABLE schedules (
    id           text COLLATE "C" PRIMARY KEY,
    workflow     text COLLATE "C" NOT NULL,
    cron         text NOT NULL,
    tz           text NOT NULL,
    input        json NOT NULL,
    overlap      text NOT NULL,
    catchup      text NOT NULL,
    start_at     timestamptz,
    end_at       timestamptz,
    paused       boolean NOT NULL DEFAULT false,
    next_fire_at timestamptz,
    last_tick_at timestamptz,
    last_run_id  text COLLATE "C",
    created_at   timestamptz NOT NULL,
    updated_at   timestamptz NOT NULL
);

-- Workers ask for the due schedules, and the next fire time, at every pass.
CREATE INDEX schedules_due ON schedules (next_fire_at) WHERE NOT paused;
