-- Durable streams (perdure.get_writable, run.stream): each run's named sequences of
-- rows, numbered from 0 (see perdure._chunks). Not an index over the log: a step
-- attempt writes its chunks while it runs, from whichever worker runs it.
--
-- streams: one row per stream, its length; writers take its row lock to number their
-- rows, so writers of one stream on many connections never pick the same index.
-- stream_chunks.kind: 'chunk' (value: the encoded value), 'retraction' (value:
-- {"step", "attempt", "indices"}: those chunks were retracted), 'close' (the writer
-- closed the stream). step, attempt, attempt_key: the step attempt that wrote a chunk
-- (NULL: the workflow body); attempt_key tells one execution of an attempt from
-- another. key: the idempotency key of a workflow body's chunk (its place in the
-- body's writes), so a replay writing it again stores nothing. A chunk is committed
-- when its step's row shows the call completed by its attempt: read, never written.
CREATE TABLE streams (
    run_id  text COLLATE "C" NOT NULL,
    name    text COLLATE "C" NOT NULL,
    length  bigint NOT NULL,
    PRIMARY KEY (run_id, name)
);

CREATE TABLE stream_chunks (
    run_id      text COLLATE "C" NOT NULL,
    stream      text COLLATE "C" NOT NULL,
    idx         bigint NOT NULL,
    kind        text NOT NULL,
    value       json,
    step        text COLLATE "C",
    attempt     integer,
    attempt_key text COLLATE "C",
    key         text COLLATE "C",
    retracted   boolean NOT NULL DEFAULT false,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (run_id, stream, idx)
);

-- A workflow body's chunk is stored once, however often a replay writes it.
CREATE UNIQUE INDEX stream_chunks_key ON stream_chunks (run_id, stream, key)
    WHERE key IS NOT NULL;
-- Retracting a step's chunks: the live ones of a step call.
CREATE INDEX stream_chunks_step ON stream_chunks (run_id, step)
    WHERE step IS NOT NULL AND kind = 'chunk' AND NOT retracted;
