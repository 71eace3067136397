-- A run whose replay diverged from its log, or whose workflow code raised one of its
-- block_on errors, is set aside as 'blocked' rather than failed (issue 12): the reason
-- is kept on the row, for listings and the dashboard; the log keeps the history of
-- every run_blocked and run_unblocked. A blocked run is unheld with no wake_at, so no
-- claim takes it until it is unblocked (or its cancel is requested: then its next
-- holder cancels it).
ALTER TABLE runs ADD COLUMN blocked_reason text;

-- Fenced like perdure_append: only the run's holder sets it aside.
CREATE FUNCTION perdure_block_run(
    p_worker text, p_run text, p_data text, p_reason text, p_at timestamptz
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_owner  text;
    v_seq    bigint;
    v_cancel timestamptz;
BEGIN
    SELECT owner, last_seq, cancel_requested_at INTO v_owner, v_seq, v_cancel
      FROM runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM perdure_lease_lost(p_worker, p_run, NULL, false);
    ELSIF v_owner IS DISTINCT FROM p_worker THEN
        PERFORM perdure_lease_lost(p_worker, p_run, v_owner, true);
    END IF;
    INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
    VALUES (p_run, v_seq + 1, 'run_blocked', NULL, p_data::json, p_at);
    UPDATE runs SET status = 'blocked', blocked_reason = p_reason, owner = NULL,
                    wake_at = CASE WHEN v_cancel IS NOT NULL THEN p_at END,
                    last_seq = v_seq + 1, updated_at = p_at
     WHERE id = p_run;
    IF v_cancel IS NOT NULL THEN
        PERFORM pg_notify('perdure_changes', p_run);
    END IF;
END $$;

-- A blocked run is due again; any other run is returned as it stands.
CREATE FUNCTION perdure_unblock_run(p_run text, p_data text, p_at timestamptz)
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
                        updated_at = p_at,
                        wake_at = CASE WHEN owner IS NULL THEN p_at ELSE wake_at END
         WHERE id = p_run;
        PERFORM pg_notify('perdure_changes', p_run);
    END IF;
    RETURN QUERY SELECT * FROM runs WHERE id = p_run;
END $$;
