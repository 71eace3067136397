-- A lone plain append in fewer statements (issue 16: PostgreSQL sequential steps).
--
-- A sequential step costs one append (a trivial step's step_started and step_completed
-- together), and perdure_append spent about 85 µs of server CPU on it (BENCHMARKS.md):
-- the run row read FOR UPDATE and then updated, the events inserted through a
-- set-returning function, and the step row upserted once per event. This function
-- writes the same rows for a plain append (as perdure_append_many defines it: its
-- events change steps, none queued, and the run's start, nothing else, and it consumes
-- nothing) in four statements, about a third less server time:
--
--   * the fence is the update of the run row itself: it takes the row's lock, bumps
--     last_seq and returns the seq the events follow, only if the worker holds the run
--     and no cancel is requested. When it matches nothing, the row is read under its
--     lock to say why (PD001 lease lost, PD004 cancel requested: a plain append never
--     ends the run), and should it now match after all (a change between the two
--     statements), the update is tried again under that lock;
--   * one or two events (a step's usual append) are inserted by a VALUES statement,
--     more by unnest;
--   * the step rows come folded by the client (perdure.stores._index.fold_steps, as
--     for perdure_append_many): one upsert per step, not per event.
--
-- The events triggers of 0009, 0010 and 0014 fire as for any insert into events, so a
-- plain append's attributes_set and stream_written events are indexed as before; the
-- run's end, which 0009 makes notify its parent, never comes this way (it is not plain).
-- Every other append still goes through perdure_append, and batches through
-- perdure_append_many.
CREATE FUNCTION perdure_append_plain(
    p_worker text, p_run text, p_at timestamptz, p_durable boolean,
    p_types text[], p_cids text[], p_data text[], p_started boolean,
    p_step_positions integer[], p_step_keys text[], p_step_names text[],
    p_step_status text[], p_step_attempts integer[], p_step_inputs text[],
    p_step_outputs text[], p_step_errors text[]
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_n      integer := coalesce(array_length(p_types, 1), 0);
    v_seq    bigint;
    v_owner  text;
    v_cancel timestamptz;
BEGIN
    IF NOT p_durable THEN
        -- As in perdure_append: committed at once, synced with the next durable commit.
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    LOOP
        UPDATE runs SET last_seq = last_seq + v_n, updated_at = p_at,
                        status = CASE WHEN p_started THEN 'running' ELSE status END,
                        started_at = CASE WHEN p_started THEN coalesce(started_at, p_at)
                                          ELSE started_at END
         WHERE id = p_run AND owner = p_worker AND cancel_requested_at IS NULL
        RETURNING last_seq - v_n INTO v_seq;
        EXIT WHEN FOUND;
        SELECT owner, cancel_requested_at INTO v_owner, v_cancel
          FROM runs WHERE id = p_run FOR UPDATE;
        IF NOT FOUND THEN
            PERFORM perdure_lease_lost(p_worker, p_run, NULL, false);
        ELSIF v_owner IS DISTINCT FROM p_worker THEN
            PERFORM perdure_lease_lost(p_worker, p_run, v_owner, true);
        ELSIF v_cancel IS NOT NULL THEN
            PERFORM perdure_cancel_requested(p_run);
        END IF;
    END LOOP;
    IF v_n = 2 THEN
        INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
        VALUES (p_run, v_seq + 1, p_types[1], p_cids[1], p_data[1]::json, p_at),
               (p_run, v_seq + 2, p_types[2], p_cids[2], p_data[2]::json, p_at);
    ELSIF v_n = 1 THEN
        INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
        VALUES (p_run, v_seq + 1, p_types[1], p_cids[1], p_data[1]::json, p_at);
    ELSIF v_n > 2 THEN
        INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
        SELECT p_run, v_seq + e.i, e.type, e.cid, e.data::json, p_at
          FROM unnest(p_types, p_cids, p_data) WITH ORDINALITY AS e(type, cid, data, i);
    END IF;
    FOR k IN 1 .. coalesce(array_length(p_step_keys, 1), 0) LOOP
        INSERT INTO steps (run_id, correlation_id, name, status, attempt, input, output,
                           error, started_at, updated_at, first_seq)
        VALUES (p_run, p_step_keys[k], p_step_names[k], p_step_status[k],
                p_step_attempts[k], p_step_inputs[k]::json, p_step_outputs[k]::json,
                p_step_errors[k]::json, p_at, p_at, v_seq + p_step_positions[k])
        ON CONFLICT (run_id, correlation_id) DO UPDATE SET
            status = excluded.status,
            attempt = excluded.attempt,
            input = coalesce(steps.input, excluded.input),
            output = excluded.output,
            error = excluded.error,
            updated_at = excluded.updated_at;
    END LOOP;
    RETURN v_seq + v_n;
END $$;
