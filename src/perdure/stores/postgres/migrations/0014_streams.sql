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

-- A chunk of the workflow body is logged (stream_written) and joins its stream in the
-- transaction that logs it, whichever function inserts the event (perdure_append, its
-- batched form, a fork): a trigger, as for attributes (0010). The event's correlation id
-- is the chunk's key. The chunk value is taken as JSON (->), never as text, so a
-- U+0000 in it cannot fail the append; the stream's name holds none.
CREATE FUNCTION perdure_stream_written() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_data json := NEW.data;
    v_stream text;
    v_close boolean;
    v_index bigint;
BEGIN
    IF strpos(NEW.data::text, '\u0000') > 0 THEN  -- see 0010: keys read as text need it gone
        v_data := regexp_replace(NEW.data::text, '(?<!\\)((?:\\\\)*)\\u0000', '\1', 'g')::json;
    END IF;
    v_stream := v_data->>'stream';
    v_close := coalesce((v_data->>'close')::boolean, false);
    IF EXISTS (SELECT 1 FROM stream_chunks
                WHERE run_id = NEW.run_id AND stream = v_stream AND key = NEW.correlation_id) THEN
        RETURN NULL;
    END IF;
    INSERT INTO streams (run_id, name, length) VALUES (NEW.run_id, v_stream, 1)
    ON CONFLICT (run_id, name) DO UPDATE SET length = streams.length + 1
    RETURNING length - 1 INTO v_index;
    INSERT INTO stream_chunks (run_id, stream, idx, kind, value, key, created_at)
    VALUES (NEW.run_id, v_stream, v_index, CASE WHEN v_close THEN 'close' ELSE 'chunk' END,
            CASE WHEN v_close THEN NULL ELSE NEW.data->'value' END, NEW.correlation_id,
            NEW.created_at);
    PERFORM pg_notify('perdure_changes', 'stream');
    RETURN NULL;
END $$;

CREATE TRIGGER events_stream_written AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.type = 'stream_written')
    EXECUTE FUNCTION perdure_stream_written();
