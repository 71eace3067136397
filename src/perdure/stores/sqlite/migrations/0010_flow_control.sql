-- Flow control (issue 15): priorities, deduplication, debounce and concurrency limits
-- on runs, and the step limits every worker shares.
--
-- A run's limit lives on its row, written with it: limit_key (the workflow's name, and
-- the key's value when the limit has a key) and limit_n. A run holds a slot of its key
-- from its first claim until it ends: running or blocked, or pending and held. The
-- claim skips a pending run whose key has limit_n holders (perdure._flow).
ALTER TABLE runs ADD COLUMN priority INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN dedupe_key TEXT;
ALTER TABLE runs ADD COLUMN limit_key TEXT;
ALTER TABLE runs ADD COLUMN limit_n INTEGER;

-- One unended run per workflow and dedupe key; the key is free again once it ends.
CREATE UNIQUE INDEX runs_dedupe ON runs (workflow, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'running', 'blocked');
-- Counting a key's holders reads only its holders: (key, status, owner) ranges.
CREATE INDEX runs_limit ON runs (limit_key, status, owner) WHERE limit_key IS NOT NULL;

-- Step attempts holding a slot of a step's concurrency, by the worker running them. A
-- slot of a worker that is no longer registered (reaped, or gone) is not counted.
CREATE TABLE step_slots (
    holder    TEXT PRIMARY KEY,
    key       TEXT NOT NULL,
    worker_id TEXT NOT NULL,
    limit_n   INTEGER NOT NULL,
    taken_at  INTEGER NOT NULL
);
CREATE INDEX step_slots_key ON step_slots (key);

-- Step attempts started, per rate key, inside the sliding window (older ones are
-- deleted as the window moves on).
CREATE TABLE step_starts (
    key         TEXT NOT NULL,
    started_at  INTEGER NOT NULL,
    holder      TEXT NOT NULL,
    rate_count  INTEGER NOT NULL,
    period_us   INTEGER NOT NULL
);
CREATE INDEX step_starts_key ON step_starts (key, started_at);
