-- The eager start (issue 16): a run created already held by the worker of the process
-- that starts it, in one statement, so one round trip (the store's create_run with
-- claim_for was BEGIN, perdure_create_run, the claim's UPDATE, COMMIT: four).
--
-- As perdure_create_run (0001), and the run row is written as a claim leaves it:
-- pending, owner p_owner, wake_at NULL (never due: no other worker's claim sees it).
-- An id that exists is left as it is, unclaimed, and false is returned. The triggers of
-- 0009 (parent) and 0010 (deadline, attributes) index the run_created event as for any
-- create. A new function rather than an argument to perdure_create_run: the batched
-- create (perdure_create_runs) and the flow-control path keep the signature they call.
CREATE FUNCTION perdure_create_run_held(
    p_id text, p_workflow text, p_input text, p_version text,
    p_data text, p_at timestamptz, p_owner text
) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO runs (id, workflow, status, input, version, created_at, updated_at,
                      owner, wake_at, last_seq)
    VALUES (p_id, p_workflow, 'pending', p_input::json, p_version, p_at, p_at,
            p_owner, NULL, 1)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
    VALUES (p_id, 1, 'run_created', NULL, p_data::json, p_at);
    -- Notified as perdure_create_run notifies (watchers of runs' changes hear of it).
    PERFORM pg_notify('perdure_changes', p_id);
    RETURN true;
END $$;
