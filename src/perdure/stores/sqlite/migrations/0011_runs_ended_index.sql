-- The Metrics page (issue 17) counts the runs that ended in a window, by workflow and
-- outcome, and reads the steps of the most recently ended ones. This index holds what
-- those queries read, by completion time, so they read no row of runs: one entry per
-- run, made when it ends; nothing on a step's append. Runs started per minute read
-- runs_created (or runs_workflow_created), which hold created_at already.
CREATE INDEX runs_ended ON runs (completed_at, workflow, status, id)
    WHERE completed_at IS NOT NULL;
