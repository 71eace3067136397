-- Child runs (issue 13): a run a workflow starts with perdure.start_child, or by
-- calling another workflow, keeps its parent, the top of its tree (root_id) and its
-- call in the parent's log (parent_call, a correlation id such as child.checkout#3).
-- When a child ends, the transaction that ends it puts an item in its parent's
-- hook_inbox (token: the child's id; correlation_id: parent_call) and wakes the parent:
-- the parent's holder logs it as child_completed, as it logs a hook's payload.
ALTER TABLE runs ADD COLUMN parent_id text COLLATE "C";
ALTER TABLE runs ADD COLUMN root_id text COLLATE "C";
ALTER TABLE runs ADD COLUMN parent_call text COLLATE "C";

-- A run's children, newest first (list_runs(parent_id=...), a run's page).
CREATE INDEX runs_parent ON runs (parent_id, created_at, id) WHERE parent_id IS NOT NULL;

-- The parent is indexed from the run_created event that names it, in the transaction
-- that logs it (perdure_create_run, whatever batch carries it): a trigger rather than
-- new arguments, so perdure_create_run keeps the signature every caller knows.
CREATE FUNCTION perdure_index_event_parent() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    v_data json;
BEGIN
    IF strpos(NEW.data::text, '"parent_id"') = 0 THEN
        RETURN NULL;
    END IF;
    -- As in 0010: a string's U+0000 (in the input) fails reading any key; drop them.
    v_data := NEW.data;
    IF strpos(NEW.data::text, '\u0000') > 0 THEN
        v_data := regexp_replace(NEW.data::text, '(?<!\\)((?:\\\\)*)\\u0000', '\1', 'g')::json;
    END IF;
    UPDATE runs SET parent_id = v_data->>'parent_id',
                    root_id = coalesce(v_data->>'root_id', v_data->>'parent_id'),
                    parent_call = v_data->>'parent_call'
     WHERE id = NEW.run_id;
    RETURN NULL;
END $$;

CREATE TRIGGER events_index_parent AFTER INSERT ON events FOR EACH ROW
    WHEN (NEW.type = 'run_created')
    EXECUTE FUNCTION perdure_index_event_parent();

-- As in 0002, and a child's end goes into its parent's inbox and wakes the parent
-- (unless the parent has ended), in the same transaction: whatever ends the run (its
-- holder's append, a cancel of a pending run) calls this.
--
-- Lock order: the child's row, then its parent's. Two group-commit batches may then
-- wait on each other (each ending a child whose parent the other holds): PostgreSQL
-- aborts one, which writes nothing, and the store sends its appends one by one (0003);
-- a single append waits only on its run's ancestors, which in a tree never form a cycle.
CREATE OR REPLACE FUNCTION perdure_end_run(
    p_run text, p_status text, p_output text, p_error text, p_at timestamptz
) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    v_parent text;
    v_call   text;
BEGIN
    UPDATE runs SET status = p_status, output = p_output::json, error = p_error::json,
                    completed_at = p_at, owner = NULL, wake_at = NULL
     WHERE id = p_run
    RETURNING parent_id, parent_call INTO v_parent, v_call;
    DELETE FROM timers WHERE run_id = p_run;
    DELETE FROM hooks WHERE run_id = p_run;
    DELETE FROM hook_inbox WHERE run_id = p_run;
    DELETE FROM step_tasks WHERE run_id = p_run;
    IF v_parent IS NOT NULL AND v_call IS NOT NULL AND EXISTS (
        SELECT 1 FROM runs WHERE id = v_parent
           AND status NOT IN ('completed', 'failed', 'cancelled')
    ) THEN
        INSERT INTO hook_inbox (run_id, token, correlation_id, payload, created_at)
        VALUES (v_parent, p_run, v_call,
                CASE WHEN p_error IS NOT NULL
                     THEN json_build_object('status', p_status, 'error', p_error::json)
                     WHEN p_status = 'completed'
                     THEN json_build_object('status', p_status, 'output', p_output::json)
                     ELSE json_build_object('status', p_status) END,
                p_at);
        UPDATE runs SET wake_at = least(wake_at, p_at), updated_at = p_at
         WHERE id = v_parent AND owner IS NULL AND wake_at IS NOT NULL;
        PERFORM pg_notify('perdure_changes', v_parent);
    END IF;
END $$;
