-- Child runs (issue 13): a run a workflow starts with perdure.start_child, or by
-- calling another workflow, keeps its parent, the top of its tree (root_id) and its
-- call in the parent's log (parent_call, a correlation id such as child.checkout#3).
-- When a child ends, the transaction that ends it puts an item in its parent's
-- hook_inbox (token: the child's id; correlation_id: parent_call) and wakes the parent:
-- the parent's holder logs it as child_completed, as it logs a hook's payload.
ALTER TABLE runs ADD COLUMN parent_id TEXT;
ALTER TABLE runs ADD COLUMN root_id TEXT;
ALTER TABLE runs ADD COLUMN parent_call TEXT;

-- A run's children, newest first (list_runs(parent_id=...), a run's page).
CREATE INDEX runs_parent ON runs (parent_id, created_at, id) WHERE parent_id IS NOT NULL;
