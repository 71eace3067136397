-- Group commit: the appends of many runs, and new runs, in one round trip and one
-- transaction.
--
-- The store sends the appends (and the run creations) its callers make at about the
-- same moment together: a commit and a round trip cost far more than the few statements
-- of an append, so a thousand runs finishing steps at once cost a few transactions, not
-- a thousand.
--
-- Lock order: a batch holds each run's row until it commits, so it takes them in run
-- id order (the store sorts the batch), and so do the reaper and a leaving worker
-- below: two such transactions never wait for each other in a cycle. (Should one
-- deadlock all the same, the whole batch fails, writes nothing, and the store sends
-- each of its appends alone.)

-- A run's row is rewritten by every append to it: room left on its page lets the new
-- version stay there (a HOT update), which spares the run's five indexes an entry each.
ALTER TABLE runs SET (fillfactor = 70);

-- An append of a batch that is not plain (see perdure_append_many): perdure_append's
-- arguments, but for p_durable, which holds for the whole batch.
CREATE TYPE perdure_append_item AS (
    worker text, run text, at timestamptz,
    types text[], cids text[], data text[],
    change text[], key text[], name text[], status text[], attempt integer[],
    wake_at timestamptz[], input text[], output text[], error text[], queue text[],
    consume bigint[], consume_tasks bigint[]
);

-- The appends of a batch; one row per append: first the plain ones, then the others,
-- each in the order given. p_durable holds for the whole batch: one durable append makes
-- the commit synced. p_lock is every run of the batch, in id order: they are locked in
-- that order first (the store sorts the batch by run id too).
--
-- A plain append is the common one: its events change steps (none queued) and the run's
-- start, nothing else; it consumes nothing; and no other append of the batch is to its
-- run. The plain appends are written all at once, a statement per table:
--   p_workers, p_runs, p_ats, p_counts (how many events) and p_starts (whether one is
--     run_started) have one element per plain append;
--   p_types, p_cids and p_data hold their events, end to end, p_items saying which
--     append (1-based) each belongs to and p_positions where in it (1-based);
--   the p_step_ arrays hold the row each append leaves for each step it changes: the
--     step's name and first position as its first change in the append has them, its
--     input as the first change that has one, the rest as its last change.
-- Every other append, in p_others, goes through perdure_append.
--
-- An append whose worker does not hold its run (PD001), or whose hook token is held
-- already (PD002), writes nothing and comes back as its SQLSTATE and DETAIL, as
-- perdure_append would have raised them; the others commit. Any other error fails the
-- whole batch, which then writes nothing.
CREATE FUNCTION perdure_append_many(
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
    v_seqs   bigint[];   -- exists, and whether its worker holds it
    v_found  boolean[];
    v_held   boolean[];
    v_item   perdure_append_item;
    v_owner  text;
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
           array_agg(r.owner IS NOT DISTINCT FROM a.worker ORDER BY a.k)
      INTO v_owners, v_seqs, v_found, v_held
      FROM unnest(p_runs, p_workers) WITH ORDINALITY AS a(run, worker, k)
      LEFT JOIN LATERAL (SELECT id, owner, last_seq FROM runs WHERE id = a.run) AS r ON true;
    INSERT INTO events (run_id, seq, type, correlation_id, data, created_at)
    SELECT p_runs[e.item], v_seqs[e.item] + e.pos, e.type, e.cid, e.data::json, p_ats[e.item]
      FROM unnest(p_items, p_positions, p_types, p_cids, p_data) AS e(item, pos, type, cid, data)
     WHERE v_held[e.item];
    INSERT INTO steps (run_id, correlation_id, name, status, attempt, input, output, error,
                       started_at, updated_at, first_seq)
    SELECT p_runs[s.item], s.key, s.name, s.status, s.attempt, s.input::json, s.output::json,
           s.error::json, p_ats[s.item], p_ats[s.item], v_seqs[s.item] + s.pos
      FROM unnest(p_step_items, p_step_positions, p_step_keys, p_step_names, p_step_status,
                  p_step_attempts, p_step_inputs, p_step_outputs, p_step_errors)
           AS s(item, pos, key, name, status, attempt, input, output, error)
     WHERE v_held[s.item]
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
      FROM unnest(p_runs, p_ats, p_counts, p_starts, v_seqs, v_held)
           AS a(run, at, n, started, last_seq, held)
     WHERE runs.id = a.run AND a.held;
    RETURN QUERY
    SELECT CASE WHEN a.held THEN a.last_seq + a.n END,
           CASE WHEN NOT a.held THEN 'PD001' END,
           CASE WHEN NOT a.held
                THEN json_build_object('owner', a.owner, 'exists', a.found)::text END
      FROM unnest(p_counts, v_owners, v_seqs, v_found, v_held) WITH ORDINALITY
           AS a(n, owner, last_seq, found, held, k)
     ORDER BY a.k;

    -- The others, one by one.
    FOREACH v_item IN ARRAY coalesce(p_others, '{}') LOOP
        seq := NULL;
        failure := NULL;
        detail := NULL;
        -- The fence, checked here rather than raised by perdure_append, so that a lost
        -- run costs no subtransaction; perdure_append finds the lock held and passes.
        SELECT owner INTO v_owner FROM runs WHERE id = v_item.run;
        IF NOT FOUND OR v_owner IS DISTINCT FROM v_item.worker THEN
            failure := 'PD001';
            detail := json_build_object('owner', v_owner, 'exists', FOUND)::text;
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

-- perdure_append of one append of a batch.
CREATE FUNCTION perdure_append_one(p_item perdure_append_item, p_durable boolean)
RETURNS bigint LANGUAGE sql AS $$
    SELECT perdure_append(
        p_item.worker, p_item.run, p_item.at, p_durable,
        p_item.types, p_item.cids, p_item.data,
        p_item.change, p_item.key, p_item.name, p_item.status, p_item.attempt,
        p_item.wake_at, p_item.input, p_item.output, p_item.error, p_item.queue,
        p_item.consume, p_item.consume_tasks)
$$;

-- perdure_create_run for each of several runs, in the order given (the store sorts them
-- by id); one row per run, in that order: whether it was created. Synced at commit like
-- perdure_create_run: one sync for the whole batch.
CREATE FUNCTION perdure_create_runs(
    p_ids text[], p_workflows text[], p_inputs text[], p_versions text[],
    p_data text[], p_ats timestamptz[]
) RETURNS TABLE (created boolean) LANGUAGE plpgsql AS $$
BEGIN
    FOR k IN 1 .. coalesce(array_length(p_ids, 1), 0) LOOP
        created := perdure_create_run(
            p_ids[k], p_workflows[k], p_inputs[k], p_versions[k], p_data[k], p_ats[k]);
        RETURN NEXT;
    END LOOP;
END $$;

-- As in 0002, but the runs of the dead workers are locked in id order.
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

-- As in 0002, but the worker's runs are locked in id order.
CREATE OR REPLACE FUNCTION perdure_unregister(p_worker text, p_at timestamptz)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_released bigint;
    v_requeued bigint;
BEGIN
    UPDATE runs SET owner = NULL, wake_at = p_at, updated_at = p_at
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
