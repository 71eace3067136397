-- Durable streams (perdure.get_writable, run.stream): each run's named sequences of
-- rows, numbered from 0 (see perdure._chunks). Not an index over the log: a step
-- attempt writes its chunks while it runs, from whichever worker runs it.
--
-- kind: 'chunk' (value: the encoded value), 'retraction' (value: {"step", "attempt",
-- "indices"}: those chunks were retracted), 'close' (the writer closed the stream).
-- step, attempt, attempt_key: the step attempt that wrote a chunk (NULL: the workflow
-- body); attempt_key tells one execution of an attempt from another. key: the
-- idempotency key of a workflow body's chunk (its place in the body's writes), so a
-- replay writing it again stores nothing. A chunk is committed when its step's row
-- shows the call completed by its attempt: the state is read, never written.
CREATE TABLE stream_chunks (
    run_id      TEXT NOT NULL,
    stream      TEXT NOT NULL,
    idx         INTEGER NOT NULL,
    kind        TEXT NOT NULL,
    value       TEXT,
    step        TEXT,
    attempt     INTEGER,
    attempt_key TEXT,
    key         TEXT,
    retracted   INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (run_id, stream, idx)
) WITHOUT ROWID;

-- A workflow body's chunk is stored once, however often a replay writes it.
CREATE UNIQUE INDEX stream_chunks_key ON stream_chunks (run_id, stream, key)
    WHERE key IS NOT NULL;
-- Retracting a step's chunks: the live ones of a step call.
CREATE INDEX stream_chunks_step ON stream_chunks (run_id, step)
    WHERE step IS NOT NULL AND kind = 'chunk' AND retracted = 0;
