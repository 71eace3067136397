-- Step tasks: steps routed to a queue (@step(queue=...)), run by the workers serving it.
--
-- A step_started event with a "queue" inserts a row, queued, in the same transaction.
-- A worker serving the queue claims it (status claimed, owner set), runs the step and
-- stores its outcome (status finished: output, or the final error, plus the errors of
-- the attempts that failed before in retries), which wakes the run. The run's holder
-- logs the outcome and deletes the row in the same append; a terminal event deletes
-- the run's rows. A claimed row whose worker dies or leaves goes back to queued.
--
-- attempt: while queued or claimed, the attempt to start with; once finished, the last
-- one made. AUTOINCREMENT: an id is never reused, so a stale id cannot touch a newer task.
CREATE TABLE step_tasks (
    id             INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id         TEXT NOT NULL,
    correlation_id TEXT NOT NULL,
    queue          TEXT NOT NULL,
    name           TEXT NOT NULL,
    input          TEXT,
    attempt        INTEGER NOT NULL,
    status         TEXT NOT NULL,
    owner          TEXT,
    output         TEXT,
    error          TEXT,
    retries        TEXT,
    created_at     INTEGER NOT NULL,
    updated_at     INTEGER NOT NULL,
    UNIQUE (run_id, correlation_id)
);

-- Claiming: the queued tasks of a queue, oldest first.
CREATE INDEX step_tasks_queued ON step_tasks (queue, id) WHERE status = 'queued';
-- A worker's claimed tasks: put back on unregister or death.
CREATE INDEX step_tasks_claimed ON step_tasks (owner) WHERE status = 'claimed';
-- Results for the holders, and what a release must not sleep through.
CREATE INDEX step_tasks_finished ON step_tasks (run_id, updated_at) WHERE status = 'finished';
