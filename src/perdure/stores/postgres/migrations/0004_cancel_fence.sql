-- A stored cancel request wins over everything a run's worker does after it (issue 10).
--
-- Once a run's cancel is requested (cancel_requested_at set, under the run row's lock),
-- the only append its worker may make is one that ends it cancelled: every other append
-- is refused with PD004 and writes nothing. The worker then learns of the request in the
-- very transaction that would have moved the run on, whenever its own pass would have
-- told it, and cancels the workflow instead: a step that finished meanwhile is not handed
-- to the workflow (so no later step begins), and a run_completed or run_failed written
-- after the request never lands. Appends and the request take the run row's lock, so
-- each append is either wholly before the request or sees it.
--
-- Errors, in addition to those of 0001 and 0002:
--   PD004 cancel requested: the run's cancel is requested; only run_cancelled may end it

-- Whether an append's index changes end the run cancelled (its last event is run_cancelled).
CREATE FUNCTION perdure_ends_cancelled(p_change text[], p_status text[])
RETURNS boolean LANGUAGE sql IMMUTABLE AS $$
    SELECT coalesce(p_change[array_length(p_change, 1)] = 'ended'
                    AND p_status[array_length(p_status, 1)] = 'cancelled', false)
$$;

CREATE FUNCTION perdure_cancel_requested(p_run text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'run % has a cancel request: only its cancellation may be logged', p_run
        USING ERRCODE = 'PD004';
END $$;

-- As in 0002, and refused (PD004) when the run's cancel is requested, unless it ends the
-- run cancelled.
CREATE OR REPLACE FUNCTION perdure_append(
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
    v_cancel timestamptz;
BEGIN
    IF NOT p_durable THEN
        -- Committed at once, synced with the next durable commit: losing it to a power
        -- cut only makes a step run again.
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    SELECT owner, last_seq, cancel_requested_at INTO v_owner, v_seq, v_cancel
      FROM runs WHERE id = p_run FOR UPDATE;
    IF NOT FOUND THEN
        PERFORM perdure_lease_lost(p_worker, p_run, NULL, false);
    ELSIF v_owner IS DISTINCT FROM p_worker THEN
        PERFORM perdure_lease_lost(p_worker, p_run, v_owner, true);
    ELSIF v_cancel IS NOT NULL AND NOT perdure_ends_cancelled(p_change, p_status) THEN
        PERFORM perdure_cancel_requested(p_run);
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

-- As in 0003, and an append to a run whose cancel is requested comes back as PD004 (it
-- writes nothing) unless it ends the run cancelled; plain appends never do.
CREATE OR REPLACE FUNCTION perdure_append_many(
    p_lock text[], p_durable boolean,
    p_workers text[], p_runs text[], p_ats timestamptz[], p_counts integer[],
    p_starts boolean[], p_items integer[], p_positions integer[],
    p_types text[], p_cids text[], p_data text[],
    p_step_items integer[], p_step_positions integer[], p_step_keys text[],
    p_step_names text[], p_step_status text[], p_step_attempts integer[],
    p_step_inputs text[], p_step_outputs text[], p_step_errors text[],
    p_others perdure_append_item[]
) RETURNS TABLE (seq bigint, failure text, detail text) LANGUAGE plpgsql AS $$
DECLARE
    v_owners text[];     -- per plain append: its run's owner and last seq, whether it
    v_seqs   bigint[];   -- exists, whether its worker holds it, and whether it may be
    v_found  boolean[];  -- written (held, and no cancel requested)
    v_held   boolean[];
    v_ok     boolean[];
    v_item   perdure_append_item;
    v_owner  text;
    v_cancel timestamptz;
BEGIN
    IF NOT p_durable THEN
        PERFORM set_config('synchronous_commit', 'off', true);
    END IF;
    -- Every run of the batch, locked before anything else, in id order.
    PERFORM 1 FROM (SELECT id FROM runs WHERE id = ANY (p_lock) ORDER BY id FOR UPDATE) AS r;

    -- The plain appends, all at once. Their values are looked up by subscript, which
    -- takes constant time on the arrays of a PL/pgSQL function, rather than joined.
    SELECT array_agg(r.owner ORDER BY a.k), array_agg(r.last_seq ORDER BY a.k),
           array_agg(r.id IS NOT NULL ORDER BY a.k),
           array_agg(r.owner IS NOT DISTINCT FROM a.worker ORDER BY a.k),
           array_agg(r.owner IS NOT DISTINCT FROM a.worker AND r.cancel_requested_at IS NULL
                     ORDER BY a.k)
      INTO v_owners, v_seqs, v_found, v_held, v_ok
      FROM unnest(p_runs, p_workers) WITH ORDINALITY AS a(run, worker, k)
      LEFT JOIN LATERAL (SELECT id, owner, last_seq, cancel_requested_at FROM runs
                          WHERE id = a.run) AS r ON true;
    INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
    SELECT p_runs[e.item], v_seqs[e.item] + e.pos, e.type, e.cid, e.data::json, p_ats[e.item]
      FROM unnest(p_items, p_positions, p_types, p_cids, p_data) AS e(item, pos, type, cid, data)
     WHERE v_ok[e.item];
    INSERT INTO steps (run_id, correlation_id, name, status, attempt, input, output, error,
                       started_at, updated_at, first_seq)
    SELECT p_runs[s.item], s.key, s.name, s.status, s.attempt, s.input::json, s.output::json,
           s.error::json, p_ats[s.item], p_ats[s.item], v_seqs[s.item] + s.pos
      FROM unnest(p_step_items, p_step_positions, p_step_keys, p_step_names, p_step_status,
                  p_step_attempts, p_step_inputs, p_step_outputs, p_step_errors)
           AS s(item, pos, key, name, status, attempt, input, output, error)
     WHERE v_ok[s.item]
    ON CONFLICT (run_id, correlation_id) DO UPDATE SET
        status = excluded.status,
        attempt = excluded.attempt,
        input = coalesce(steps.input, excluded.input),
        output = excluded.output,
        error = excluded.error,
        updated_at = excluded.updated_at;
    UPDATE runs SET last_seq = a.last_seq + a.n, updated_at = a.at,
                    status = CASE WHEN a.started THEN 'running' ELSE runs.status END,
                    started_at = CASE WHEN a.started THEN coalesce(runs.started_at, a.at)
                                      ELSE runs.started_at END
      FROM unnest(p_runs, p_ats, p_counts, p_starts, v_seqs, v_ok)
           AS a(run, at, n, started, last_seq, ok)
     WHERE runs.id = a.run AND a.ok;
    RETURN QUERY
    SELECT CASE WHEN a.ok THEN a.last_seq + a.n END,
           CASE WHEN NOT a.held THEN 'PD001' WHEN NOT a.ok THEN 'PD004' END,
           CASE WHEN NOT a.held
                THEN json_build_object('owner', a.owner, 'exists', a.found)::text END
      FROM unnest(p_counts, v_owners, v_seqs, v_found, v_held, v_ok) WITH ORDINALITY
           AS a(n, owner, last_seq, found, held, ok, k)
     ORDER BY a.k;

    -- The others, one by one.
    FOREACH v_item IN ARRAY coalesce(p_others, '{}') LOOP
        seq := NULL;
        failure := NULL;
        detail := NULL;
        -- The fence, checked here rather than raised by perdure_append, so that a lost
        -- run costs no subtransaction; perdure_append finds the lock held and passes.
        SELECT owner, cancel_requested_at INTO v_owner, v_cancel FROM runs WHERE id = v_item.run;
        IF NOT FOUND OR v_owner IS DISTINCT FROM v_item.worker THEN
            failure := 'PD001';
            detail := json_build_object('owner', v_owner, 'exists', FOUND)::text;
        ELSIF v_cancel IS NOT NULL
              AND NOT perdure_ends_cancelled(v_item.change, v_item.status) THEN
            failure := 'PD004';
        ELSIF 'hook_added' = ANY (v_item.change) THEN
            -- Only an append creating a hook can fail halfway: a subtransaction undoes it.
            BEGIN
                seq := perdure_append_one(v_item, p_durable);
            EXCEPTION WHEN SQLSTATE 'PD002' THEN
                failure := 'PD002';
                GET STACKED DIAGNOSTICS detail = PG_EXCEPTION_DETAIL;
            END;
        ELSE
            seq := perdure_append_one(v_item, p_durable);
        END IF;
        RETURN NEXT;
    END LOOP;
END $$;
