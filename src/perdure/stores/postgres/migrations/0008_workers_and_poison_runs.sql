-- Deploy safety (issue 12): what each worker defines, forks, and poison runs.
--
-- workers.workflows: the workflows the worker defines, a JSON object of name -> code
-- version, so that a run no live worker can take is shown as such, and each run's
-- worker's version is in view.
ALTER TABLE workers ADD COLUMN workflows json NOT NULL DEFAULT '{}';

-- The run this one was forked from (engine.fork), or NULL.
ALTER TABLE runs ADD COLUMN forked_from text;

-- Poison runs. recoveries counts the times in a row the run was released from a
-- worker found dead with no progress in between; recovered_seq is its last_seq at the
-- last such release. A reap that finds events other than step_started after
-- recovered_seq (progress) starts the count again at 1; a clean hand back (release,
-- unregister) sets it to 0. A worker blocks a run it claims with recoveries at its
-- poison_after instead of running it once more.
ALTER TABLE runs ADD COLUMN recoveries integer NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN recovered_seq bigint NOT NULL DEFAULT 0;

-- As in 0007, and each released run counts one more recovery, or 1 after progress.
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
        UPDATE runs r SET owner = NULL, wake_at = least(p_at, r.created_at), updated_at = p_at,
               recoveries = CASE WHEN EXISTS (
                   SELECT 1 FROM events e
                    WHERE e.run_id = r.id AND e.seq > r.recovered_seq
                      AND e.type <> 'step_started'
               ) THEN 1 ELSE r.recoveries + 1 END,
               recovered_seq = r.last_seq
         WHERE r.id IN (
            SELECT id FROM runs WHERE owner IN (SELECT id FROM dead) ORDER BY id FOR UPDATE
         )
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

-- As in 0007, and the runs handed back cleanly count no recovery any more.
CREATE OR REPLACE FUNCTION perdure_unregister(p_worker text, p_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_released bigint;
    v_requeued bigint;
BEGIN
    UPDATE runs SET owner = NULL, wake_at = least(p_at, created_at), updated_at = p_at,
                    recoveries = 0
     WHERE id IN (SELECT id FROM runs WHERE owner = p_worker ORDER BY id FOR UPDATE);
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

-- As in 0002, and a run handed back cleanly counts no recovery any more.
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
    UPDATE runs SET owner = NULL, wake_at = least(p_wake_at, v_first, v_result, v_cancel),
                    recoveries = 0
     WHERE id = p_run;
    PERFORM pg_notify('perdure_changes', p_run);
END $$;

-- As in 0006, and an unblocked run counts its recoveries afresh: a poison run tried
-- again gets as many recoveries as the first time before it is blocked again.
CREATE OR REPLACE FUNCTION perdure_unblock_run(p_run text, p_data text, p_at timestamptz)
RETURNS SETOF runs LANGUAGE plpgsql AS $$
DECLARE
    v_status text;
    v_seq    bigint;
BEGIN
    SELECT status, last_seq INTO v_status, v_seq FROM runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF v_status = 'blocked' THEN
        INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
        VALUES (p_run, v_seq + 1, 'run_unblocked', NULL, p_data::json, p_at);
        UPDATE runs SET status = 'running', blocked_reason = NULL, last_seq = v_seq + 1,
                        updated_at = p_at, recoveries = 0,
                        wake_at = CASE WHEN owner IS NULL THEN p_at ELSE wake_at END
         WHERE id = p_run;
        PERFORM pg_notify('perdure_changes', p_run);
    END IF;
    RETURN QUERY SELECT * FROM runs WHERE id = p_run;
END $$;
