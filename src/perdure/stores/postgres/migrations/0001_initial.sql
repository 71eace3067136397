-- The first schema of perdure's PostgreSQL store: the tables of the SQLite store, plus
-- the functions that make each write one round trip and one transaction.
--
-- Times are timestamptz (microseconds, like the other stores). JSON values are `json`,
-- not `jsonb`: json keeps the text as written, so a dict comes back with its keys in
-- the order they had and a string may hold U+0000, which jsonb refuses. Ids, owners,
-- tokens and correlation ids sort in "C" collation, by code point, as in Python and
-- SQLite, whatever the database's locale.

-- One row per run: an index over its log, written in the same transaction as the log.
-- owner is the worker holding the run; wake_at (NULL while held or ended) is when an
-- unheld run becomes claimable; last_seq lets an append number its events without
-- reading the log.
CREATE TABLE runs (
    id                  text COLLATE "C" PRIMARY KEY,
    workflow            text COLLATE "C" NOT NULL,
    status              text NOT NULL,
    input               json NOT NULL,
    output              json,
    error               json,
    version             text,
    created_at          timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    started_at          timestamptz,
    completed_at        timestamptz,
    owner               text COLLATE "C",
    wake_at             timestamptz,
    cancel_requested_at timestamptz,
    last_seq            bigint NOT NULL
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
    run_id         text COLLATE "C" NOT NULL,
    seq            bigint NOT NULL,
    type           text NOT NULL,
    correlation_id text COLLATE "C",
    data           json NOT NULL,
    created_at     timestamptz NOT NULL,
    PRIMARY KEY (run_id, seq)
);

-- A step call's latest state; first_seq orders the steps as they were first logged.
CREATE TABLE steps (
    run_id         text COLLATE "C" NOT NULL,
    correlation_id text COLLATE "C" NOT NULL,
    name           text NOT NULL,
    status         text NOT NULL,
    attempt        integer NOT NULL,
    input          json,
    output         json,
    error          json,
    started_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    first_seq      bigint NOT NULL,
    PRIMARY KEY (run_id, correlation_id)
);

-- Sleeps started and not yet completed.
CREATE TABLE timers (
    run_id         text COLLATE "C" NOT NULL,
    correlation_id text COLLATE "C" NOT NULL,
    wake_at        timestamptz NOT NULL,
    PRIMARY KEY (run_id, correlation_id)
);

-- Live hooks; the primary key makes a token unique among them. position breaks ties
-- between hooks created at the same time, in creation order.
CREATE TABLE hooks (
    token          text COLLATE "C" PRIMARY KEY,
    run_id         text COLLATE "C" NOT NULL,
    correlation_id text COLLATE "C" NOT NULL,
    name           text NOT NULL,
    kind           text NOT NULL,
    created_at     timestamptz NOT NULL,
    position       bigint GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX hooks_run ON hooks (run_id);
CREATE INDEX hooks_created ON hooks (created_at, position);

-- Payloads resume_hook accepted that the holding worker has not logged yet. Ids come
-- from a sequence and are never reused, so consuming a stale id cannot delete a newer item.
CREATE TABLE hook_inbox (
    id             bigserial PRIMARY KEY,
    run_id         text COLLATE "C" NOT NULL,
    token          text COLLATE "C" NOT NULL,
    correlation_id text COLLATE "C" NOT NULL,
    payload        json NOT NULL,
    created_at     timestamptz NOT NULL
);
CREATE INDEX hook_inbox_run ON hook_inbox (run_id, id);

-- Live workers. A worker's lease is its heartbeat_at: once it is older than the
-- store's lease, any other worker may release the worker's runs and delete the row.
CREATE TABLE workers (
    id           text COLLATE "C" PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    started_at   timestamptz NOT NULL,
    heartbeat_at timestamptz NOT NULL
);


-- Write functions. Each runs in the caller's transaction (one statement: one
-- transaction) and takes the run row's lock first, so that writes to one run are
-- serialized: a stale worker's append waits for the reaper and then sees it lost the run.
--
-- Errors the store turns into perdure's exceptions, by SQLSTATE:
--   PD001 lease lost:    DETAIL is {"owner": <owner or null>, "exists": <bool>}
--   PD002 hook conflict: DETAIL is {"token": <token>, "holder": <run id or null>}
--
-- Writes that others act on notify channel perdure_changes (at commit), with the run's
-- id or what happened as payload; a step's append notifies nobody.

CREATE FUNCTION perdure_lease_lost(p_worker text, p_run text, p_owner text, p_exists boolean)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'worker % does not hold run %', p_worker, p_run
        USING ERRCODE = 'PD001',
              DETAIL = json_build_object('owner', p_owner, 'exists', p_exists)::text;
END $$;

-- A run's final state; nothing of it waits any more.
CREATE FUNCTION perdure_end_run(
    p_run text, p_status text, p_output text, p_error text, p_at timestamptz
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE runs SET status = p_status, output = p_output::json, error = p_error::json,
                    completed_at = p_at, owner = NULL, wake_at = NULL
     WHERE id = p_run;
    DELETE FROM timers WHERE run_id = p_run;
    DELETE FROM hooks WHERE run_id = p_run;
    DELETE FROM hook_inbox WHERE run_id = p_run;
END $$;

-- A pending run due now with its run_created event; false (nothing written) if the id exists.
CREATE FUNCTION perdure_create_run(
    p_id text, p_workflow text, p_input text, p_version text,
    p_data text, p_at timestamptz
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO runs (id, workflow, status, input, version, created_at, updated_at,
                      wake_at, last_seq)
    VALUES (p_id, p_workflow, 'pending', p_input::json, p_version, p_at, p_at, p_at, 1)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
    VALUES (p_id, 1, 'run_created', NULL, p_data::json, p_at);
    PERFORM pg_notify('perdure_changes', p_id);
    RETURN true;
END $$;

-- Fence, log the events, apply their index changes (planned by perdure.stores._index,
-- one array element per event, NULL where an event changes no index), consume inbox
-- items; the new last seq.
--
-- p_change is the kind of change: started, step, timer_set, timer_cleared, hook_added,
-- hook_removed or ended. p_key is the token for hooks, else the correlation id; p_name
-- the step's or hook's name; p_status the step's status, the hook's kind or the run's
-- final status; p_input/p_output/p_error JSON texts.
CREATE FUNCTION perdure_append(
    p_worker text, p_run text, p_at timestamptz, p_durable boolean,
    p_types text[], p_cids text[], p_data text[],
    p_change text[], p_key text[], p_name text[], p_status text[], p_attempt integer[],
    p_when timestamptz[], p_input text[], p_output text[], p_error text[],
    p_consume bigint[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_owner  text;
    v_seq    bigint;
    v_n      integer := coalesce(array_length(p_types, 1), 0);
    v_holder text;
BEGIN
    IF NOT p_durable THEN
        -- Committed at once, synced with the next durable commit: losing it to a power
        -- cut only makes a step run again.
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    SELECT owner, last_seq INTO v_owner, v_seq FROM runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM perdure_lease_lost(p_worker, p_run, NULL, false);
    ELSIF v_owner IS DISTINCT FROM p_worker THEN
        PERFORM perdure_lease_lost(p_worker, p_run, v_owner, true);
    END IF;
    IF v_n > 0 THEN
        INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
        SELECT p_run, v_seq + i, p_types[i], p_cids[i], p_data[i]::json, p_at
          FROM generate_subscripts(p_types, 1) AS i;
    END IF;
    FOR i IN 1 .. v_n LOOP
        CASE p_change[i]
        WHEN 'step' THEN
            INSERT INTO steps (run_id, correlation_id, name, status, attempt, input, output,
                               error, started_at, updated_at, first_seq)
            VALUES (p_run, p_key[i], p_name[i], p_status[i], p_attempt[i], p_input[i]::json,
                    p_output[i]::json, p_error[i]::json, p_at, p_at, v_seq + i)
            ON CONFLICT (run_id, correlation_id) DO UPDATE SET
                status = excluded.status,
                attempt = excluded.attempt,
                input = coalesce(steps.input, excluded.input),
                output = excluded.output,
                error = excluded.error,
                updated_at = excluded.updated_at;
        WHEN 'started' THEN
            UPDATE runs SET status = 'running', started_at = coalesce(started_at, p_at)
             WHERE id = p_run;
        WHEN 'timer_set' THEN
            INSERT INTO timers (run_id, correlation_id, wake_at)
            VALUES (p_run, p_key[i], p_when[i])
            ON CONFLICT (run_id, correlation_id) DO UPDATE SET wake_at = excluded.wake_at;
        WHEN 'timer_cleared' THEN
            DELETE FROM timers WHERE run_id = p_run AND correlation_id = p_key[i];
        WHEN 'hook_added' THEN
            -- Waits for a concurrent insert of the same token, then sees it committed.
            INSERT INTO hooks (token, run_id, correlation_id, name, kind, created_at)
            VALUES (p_key[i], p_run, p_cids[i], p_name[i], p_status[i], p_at)
            ON CONFLICT (token) DO NOTHING;
            IF NOT FOUND THEN
                SELECT run_id INTO v_holder FROM hooks WHERE token = p_key[i];
                RAISE EXCEPTION 'hook token % is already held', p_key[i]
                    USING ERRCODE = 'PD002',
                          DETAIL = json_build_object('token', p_key[i], 'holder', v_holder)::text;
            END IF;
        WHEN 'hook_removed' THEN
            DELETE FROM hooks WHERE token = p_key[i] AND run_id = p_run;
        WHEN 'ended' THEN
            PERFORM perdure_end_run(p_run, p_status[i], p_output[i], p_error[i], p_at);
            PERFORM pg_notify('perdure_changes', p_run);
        ELSE
            NULL;  -- an event that changes no index
        END CASE;
    END LOOP;
    UPDATE runs SET last_seq = v_seq + v_n, updated_at = p_at WHERE id = p_run;
    IF p_consume IS NOT NULL THEN
        DELETE FROM hook_inbox WHERE id = ANY (p_consume) AND run_id = p_run;
    END IF;
    RETURN v_seq + v_n;
END $$;

-- Fenced like append: unhold the run, due at p_wake_at, or at once (the time the first
-- waiting payload or the cancel request was stored) if something waits for it.
CREATE FUNCTION perdure_release_run(
    p_worker text, p_run text, p_wake_at timestamptz
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_owner  text;
    v_cancel timestamptz;
    v_first  timestamptz;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT owner, cancel_requested_at INTO v_owner, v_cancel
      FROM runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM perdure_lease_lost(p_worker, p_run, NULL, false);
    ELSIF v_owner IS DISTINCT FROM p_worker THEN
        PERFORM perdure_lease_lost(p_worker, p_run, v_owner, true);
    END IF;
    -- A new statement, so a payload committed while we waited for the lock is seen.
    SELECT min(created_at) INTO v_first FROM hook_inbox WHERE run_id = p_run;
    UPDATE runs SET owner = NULL, wake_at = least(p_wake_at, v_first, v_cancel)
     WHERE id = p_run;
    PERFORM pg_notify('perdure_changes', p_run);
END $$;

-- Cancel a pending unheld run now; flag any other unended run (and wake it if unheld).
-- Returns the run as it then stands (no rows when no run has that id).
CREATE FUNCTION perdure_request_cancel(p_run text, p_at timestamptz)
RETURNS SETOF runs LANGUAGE plpgsql AS $$
DECLARE
    v_owner  text;
    v_status text;
    v_seq    bigint;
BEGIN
    SELECT owner, status, last_seq INTO v_owner, v_status, v_seq
      FROM runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_status NOT IN ('completed', 'failed', 'cancelled') THEN
        UPDATE runs SET cancel_requested_at = coalesce(cancel_requested_at, p_at),
                        updated_at = p_at,
                        wake_at = CASE WHEN owner IS NULL THEN least(wake_at, p_at) END
         WHERE id = p_run;
        IF v_owner IS NULL AND v_status = 'pending' THEN
            INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
            VALUES (p_run, v_seq + 1, 'run_cancelled', NULL, '{}', p_at);
            UPDATE runs SET last_seq = v_seq + 1 WHERE id = p_run;
            PERFORM perdure_end_run(p_run, 'cancelled', NULL, NULL, p_at);
        END IF;
        PERFORM pg_notify('perdure_changes', p_run);
    END IF;
    RETURN QUERY SELECT * FROM runs WHERE id = p_run;
END $$;

-- Store a payload for the live hook holding p_token and wake its run if nobody holds
-- it; returns the hook (no rows when no live hook holds the token). When p_name is
-- given and differs from the hook's name, the hook is returned and nothing is written.
CREATE FUNCTION perdure_resume_hook(
    p_token text, p_payload text, p_at timestamptz, p_name text
) RETURNS SETOF hooks LANGUAGE plpgsql AS $$
DECLARE
    v_hook hooks;
BEGIN
    SELECT * INTO v_hook FROM hooks WHERE token = p_token;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Lock the run, then look again: an append that ended the run or disposed the hook
    -- has committed by now, and a release waiting on us will see the payload.
    PERFORM 1 FROM runs WHERE id = v_hook.run_id FOR UPDATE;
    SELECT * INTO v_hook FROM hooks WHERE token = p_token;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF p_name IS NULL OR v_hook.name = p_name THEN
        INSERT INTO hook_inbox (run_id, token, correlation_id, payload, created_at)
        VALUES (v_hook.run_id, p_token, v_hook.correlation_id, p_payload::json, p_at);
        UPDATE runs SET wake_at = least(wake_at, p_at), updated_at = p_at
         WHERE id = v_hook.run_id AND owner IS NULL AND wake_at IS NOT NULL;
        PERFORM pg_notify('perdure_changes', v_hook.run_id);
    END IF;
    RETURN NEXT v_hook;
END $$;

-- Release the runs of every worker but p_worker whose heartbeat is older than p_before,
-- due at p_at, and forget those workers; how many runs.
CREATE FUNCTION perdure_reap(
    p_worker text, p_before timestamptz, p_at timestamptz
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_released bigint;
BEGIN
    -- SKIP LOCKED: reapers running at once take different workers, and never deadlock.
    WITH dead AS (
        DELETE FROM workers WHERE id IN (
            SELECT id FROM workers WHERE id <> p_worker AND heartbeat_at < p_before
             ORDER BY id FOR UPDATE SKIP LOCKED
        ) RETURNING id
    )
    UPDATE runs SET owner = NULL, wake_at = p_at, updated_at = p_at
     WHERE owner IN (SELECT id FROM dead);
    GET DIAGNOSTICS v_released = ROW_COUNT;
    IF v_released > 0 THEN
        PERFORM pg_notify('perdure_changes', 'reaped');
    END IF;
    RETURN v_released;
END $$;

-- Release every run p_worker holds, due at p_at, and delete its row.
CREATE FUNCTION perdure_unregister(p_worker text, p_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_released bigint;
BEGIN
    UPDATE runs SET owner = NULL, wake_at = p_at, updated_at = p_at WHERE owner = p_worker;
    GET DIAGNOSTICS v_released = ROW_COUNT;
    DELETE FROM workers WHERE id = p_worker;
    IF v_released > 0 THEN
        PERFORM pg_notify('perdure_changes', 'unregistered');
    END IF;
    RETURN v_released;
END $$;
