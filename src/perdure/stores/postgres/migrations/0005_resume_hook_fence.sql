-- A resume checks its payload against the JSON Schema in the hook_created event of the
-- live hook holding the token, then stores it (issue 10). Between that read and this
-- write the hook may be disposed and its token taken by another hook, whose schema the
-- payload was never checked against. This form of perdure_resume_hook stores the payload
-- only when the live hook is still the one that call p_cid of run p_run created; else it
-- returns the hook it found and writes nothing, as for a name that differs, and the
-- caller checks the payload again against the new hook's schema.
--
-- The four-argument form of 0001 stays, for processes of older releases that share the
-- database during a rolling upgrade.
CREATE FUNCTION perdure_resume_hook(
    p_token text, p_payload text, p_at timestamptz, p_name text, p_run text, p_cid text
) RETURNS SETOF hooks LANGUAGE plpgsql AS $$
DECLARE
    v_hook hooks;
BEGIN
    SELECT * INTO v_hook FROM hooks WHERE token = p_token;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    -- Lock the run, then look again (as in 0001).
    PERFORM 1 FROM runs WHERE id = v_hook.run_id FOR UPDATE;
    SELECT * INTO v_hook FROM hooks WHERE token = p_token;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF (p_name IS NULL OR v_hook.name = p_name)
       AND (p_run IS NULL OR (v_hook.run_id = p_run AND v_hook.correlation_id = p_cid)) THEN
        INSERT INTO hook_inbox (run_id, token, correlation_id, payload, created_at)
        VALUES (v_hook.run_id, p_token, v_hook.correlation_id, p_payload::json, p_at);
        UPDATE runs SET wake_at = least(wake_at, p_at), updated_at = p_at
         WHERE id = v_hook.run_id AND owner IS NULL AND wake_at IS NOT NULL;
        PERFORM pg_notify('perdure_changes', v_hook.run_id);
    END IF;
    RETURN NEXT v_hook;
END $$;
