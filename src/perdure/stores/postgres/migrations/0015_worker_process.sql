-- Prompt recovery on the same host (issue 16): a worker that sees, on its own host,
-- that another worker's process is gone reaps it at once instead of waiting out its
-- lease (a lost host and a partitioned one look alike from here; a dead process on
-- one's own host does not).
--
-- workers.process: the worker's process tag (perdure._process: boot id, pid namespace,
-- start time), so its host can tell it is gone even once its pid is reused. NULL:
-- registered by an earlier release, never reaped this way.
ALTER TABLE workers ADD COLUMN process text;

-- Reap the workers the caller found gone, as perdure_reap (0008) does for those whose
-- lease ran out. Fenced: a worker is reaped only while its row records the host, pid
-- and process tag the caller checked (what was checked is what is reaped), never the
-- caller itself.
CREATE OR REPLACE FUNCTION perdure_reap_gone(
    p_worker text, p_ids text[], p_hosts text[], p_pids integer[], p_processes text[],
    p_at timestamptz
) RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    v_released bigint;
    v_requeued bigint;
BEGIN
    WITH dead AS (
        DELETE FROM workers WHERE id IN (
            SELECT w.id FROM workers w
              JOIN unnest(p_ids, p_hosts, p_pids, p_processes) AS g(id, host, pid, process)
                ON w.id = g.id AND w.host = g.host AND w.pid = g.pid
               AND w.process = g.process
             WHERE w.id <> p_worker
             ORDER BY w.id FOR UPDATE OF w SKIP LOCKED
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
