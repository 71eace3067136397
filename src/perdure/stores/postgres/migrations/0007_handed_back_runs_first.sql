-- A worker claims only as many runs as its step slots have room for (issue 10): a burst
-- waits in the store, by due time, for a worker with room. The runs a worker held when
-- it was reaped or left used to become due at that moment, behind every run queued
-- before it, though they were in flight. They are now due since they were created:
-- claimed in creation order among the runs due, before the runs created after them.
-- Otherwise as in 0003.
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
        UPDATE runs SET owner = NULL, wake_at = least(p_at, created_at), updated_at = p_at
         WHERE id IN (
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

CREATE OR REPLACE FUNCTION perdure_unregister(p_worker text, p_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_released bigint;
    v_requeued bigint;
BEGIN
    UPDATE runs SET owner = NULL, wake_at = least(p_at, created_at), updated_at = p_at
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
