-- Step tasks: steps routed to a queue (@step(queue=...)), run by the workers serving it.
--
-- A step_started event with a "queue" inserts a row, queued, in the same transaction
-- (and notifies, so the queue's workers look). A worker serving the queue claims it
-- (status claimed, owner set; SKIP LOCKED), runs the step and stores its outcome
-- (status finished: output, or the final error, plus the errors of the attempts that
-- failed before in retries), which wakes the run and notifies. The run's holder logs the
-- outcome and deletes the row in the same append; a terminal event deletes the run's
-- rows. A claimed row whose worker dies or leaves goes back to queued.
--
-- attempt: while queued or claimed, the attempt to start with; once finished, the last
-- one made. Ids come from a sequence and are never reused.
CREATE TABLE step_tasks (
    id             bigserial PRIMARY KEY,
    run_id         text COLLATE "C" NOT NULL,
    correlation_id text COLLATE "C" NOT NULL,
    queue          text COLLATE "C" NOT NULL,
    name           text COLLATE "C" NOT NULL,
    input          json,
    attempt        integer NOT NULL,
    status         text NOT NULL,
    owner          text COLLATE "C",
    output         json,
    error          json,
    retries        json,
    created_at     timestamptz NOT NULL,
    updated_at     timestamptz NOT NULL,
    UNIQUE (run_id, correlation_id)
);

-- Claiming: the queued tasks of a queue, oldest first.
CREATE INDEX step_tasks_queued ON step_tasks (queue, id) WHERE status = 'queued';
-- A worker's claimed tasks: put back on unregister or death.
CREATE INDEX step_tasks_claimed ON step_tasks (owner) WHERE status = 'claimed';
-- Results for the holders, and what a release must not sleep through.
CREATE INDEX step_tasks_finished ON step_tasks (run_id, updated_at) WHERE status = 'finished';


-- Errors, in addition to 0001's:
--   PD003 step task lost: DETAIL is {"owner": <owner or null>, "status": <status or null>}
--
-- Lock order: a run's row, then its step tasks' rows (as appends take them), so that a
-- task finished while its run ends cannot deadlock with the append ending it.

CREATE OR REPLACE FUNCTION perdure_end_run(
    p_run text, p_status text, p_output text, p_error text, p_at timestamptz
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    UPDATE runs SET status = p_status, output = p_output::json, error = p_error::json,
                    completed_at = p_at, owner = NULL, wake_at = NULL
     WHERE id = p_run;
    DELETE FROM timers WHERE run_id = p_run;
    DELETE FROM hooks WHERE run_id = p_run;
    DELETE FROM hook_inbox WHERE run_id = p_run;
    DELETE FROM step_tasks WHERE run_id = p_run;
END $$;

-- perdure_append gains p_queue (the queue of a step_started routed to one, else NULL)
-- and p_consume_tasks (step tasks whose outcome the append logs).
DROP FUNCTION perdure_append(
    text, text, timestamptz, boolean, text[], text[], text[], text[], text[], text[], text[],
    integer[], timestamptz[], text[], text[], text[], bigint[]
);

CREATE FUNCTION perdure_append(
    p_worker text, p_run text, p_at timestamptz, p_durable boolean,
    p_types text[], p_cids text[], p_data text[],
    p_change text[], p_key text[], p_name text[], p_status text[], p_attempt integer[],
    p_when timestamptz[], p_input text[], p_output text[], p_error text[], p_queue text[],
    p_consume bigint[], p_consume_tasks bigint[]
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
            IF p_queue[i] IS NOT NULL THEN
                DELETE FROM step_tasks WHERE run_id = p_run AND correlation_id = p_key[i];
                INSERT INTO step_tasks (run_id, correlation_id, queue, name, input, attempt,
                                        status, created_at, updated_at)
                VALUES (p_run, p_key[i], p_queue[i], p_name[i], p_input[i]::json,
                        p_attempt[i], 'queued', p_at, p_at);
                PERFORM pg_notify('perdure_changes', 'step_task');
            END IF;
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
    IF p_consume_tasks IS NOT NULL THEN
        DELETE FROM step_tasks WHERE id = ANY (p_consume_tasks) AND run_id = p_run;
    END IF;
    RETURN v_seq + v_n;
END $$;

-- As in 0001, and a finished step task waiting to be logged also makes the run due at once.
CREATE OR REPLACE FUNCTION perdure_release_run(
    p_worker text, p_run text, p_wake_at timestamptz
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_owner  text;
    v_cancel timestamptz;
    v_first  timestamptz;
    v_result timestamptz;
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT owner, cancel_requested_at INTO v_owner, v_cancel
      FROM runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM perdure_lease_lost(p_worker, p_run, NULL, false);
    ELSIF v_owner IS DISTINCT FROM p_worker THEN
        PERFORM perdure_lease_lost(p_worker, p_run, v_owner, true);
    END IF;
    -- New statements, so a payload or a result committed while we waited for the lock
    -- is seen.
    SELECT min(created_at) INTO v_first FROM hook_inbox WHERE run_id = p_run;
    SELECT min(updated_at) INTO v_result FROM step_tasks
     WHERE run_id = p_run AND status = 'finished';
    UPDATE runs SET owner = NULL, wake_at = least(p_wake_at, v_first, v_result, v_cancel)
     WHERE id = p_run;
    PERFORM pg_notify('perdure_changes', p_run);
END $$;

-- As in 0001, and the step tasks the dead workers claimed go back to their queues, their
-- attempt counted; how many runs and tasks.
CREATE OR REPLACE FUNCTION perdure_reap(
    p_worker text, p_before timestamptz, p_at timestamptz
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_released bigint;
    v_requeued bigint;
BEGIN
    -- SKIP LOCKED: reapers running at once take different workers, and never deadlock.
    WITH dead AS (
        DELETE FROM workers WHERE id IN (
            SELECT id FROM workers WHERE id <> p_worker AND heartbeat_at < p_before
             ORDER BY id FOR UPDATE SKIP LOCKED
        ) RETURNING id
    ), released AS (
        UPDATE runs SET owner = NULL, wake_at = p_at, updated_at = p_at
         WHERE owner IN (SELECT id FROM dead)
        RETURNING 1
    ), requeued AS (
        UPDATE step_tasks SET status = 'queued', owner = NULL, attempt = attempt + 1,
                              updated_at = p_at
         WHERE status = 'claimed' AND owner IN (SELECT id FROM dead)
        RETURNING 1
    )
    SELECT (SELECT count(*) FROM released), (SELECT count(*) FROM requeued)
      INTO v_released, v_requeued;
    IF v_released + v_requeued > 0 THEN
        PERFORM pg_notify('perdure_changes', 'reaped');
    END IF;
    RETURN v_released + v_requeued;
END $$;

-- As in 0001, and the step tasks p_worker claimed go back to their queues.
CREATE OR REPLACE FUNCTION perdure_unregister(p_worker text, p_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_released bigint;
    v_requeued bigint;
BEGIN
    UPDATE runs SET owner = NULL, wake_at = p_at, updated_at = p_at WHERE owner = p_worker;
    GET DIAGNOSTICS v_released = ROW_COUNT;
    UPDATE step_tasks SET status = 'queued', owner = NULL, attempt = attempt + 1,
                          updated_at = p_at
     WHERE status = 'claimed' AND owner = p_worker;
    GET DIAGNOSTICS v_requeued = ROW_COUNT;
    DELETE FROM workers WHERE id = p_worker;
    IF v_released + v_requeued > 0 THEN
        PERFORM pg_notify('perdure_changes', 'unregistered');
    END IF;
    RETURN v_released + v_requeued;
END $$;

-- Fenced by the task: store the outcome of a step task p_worker claimed, and wake its
-- run if nobody holds it. Raises PD003 (writing nothing) when the task is gone, is not
-- claimed, or is claimed by another worker.
CREATE FUNCTION perdure_finish_step_task(
    p_worker text, p_task bigint, p_attempt integer, p_output text, p_error text,
    p_retries text, p_at timestamptz
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_run    text;
    v_status text;
    v_owner  text;
BEGIN
    -- Losing it to a power cut only makes the step run again.
    PERFORM set_config('synchronous_commit', 'off', true);
    SELECT run_id INTO v_run FROM step_tasks WHERE id = p_task;
    IF FOUND THEN
        PERFORM 1 FROM runs WHERE id = v_run FOR UPDATE;
    END IF;
    -- A new statement after the run's lock: an append that ended the run has committed.
    SELECT status, owner INTO v_status, v_owner FROM step_tasks WHERE id = p_task FOR UPDATE;
    IF NOT FOUND OR v_status <> 'claimed' OR v_owner IS DISTINCT FROM p_worker THEN
        RAISE EXCEPTION 'worker % does not hold step task %', p_worker, p_task
            USING ERRCODE = 'PD003',
                  DETAIL = json_build_object('owner', v_owner, 'status', v_status)::text;
    END IF;
    UPDATE step_tasks SET status = 'finished', attempt = p_attempt, output = p_output::json,
                          error = p_error::json, retries = p_retries::json, updated_at = p_at
     WHERE id = p_task;
    UPDATE runs SET wake_at = least(wake_at, p_at), updated_at = p_at
     WHERE id = v_run AND owner IS NULL AND wake_at IS NOT NULL;
    PERFORM pg_notify('perdure_changes', v_run);
END $$;
