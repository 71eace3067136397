-- Deploy safety (issue 12): what each worker defines, forks, and poison runs.
--
-- workers.workflows: the workflows the worker defines, a JSON object of name -> code
-- version, so that a run no live worker can take is shown as such, and each run's
-- worker's version is in view.
ALTER TABLE workers ADD COLUMN workflows TEXT NOT NULL DEFAULT '{}';

-- The run this one was forked from (engine.fork), or NULL.
ALTER TABLE runs ADD COLUMN forked_from TEXT;

-- Poison runs. recoveries counts the times in a row the run was released from a
-- worker found dead with no progress in between; recovered_seq is its last_seq at the
-- last such release. A reap that finds events other than step_started after
-- recovered_seq (progress) starts the count again at 1; a clean hand back (release,
-- unregister) sets it to 0. A worker blocks a run it claims with recoveries at its
-- poison_after instead of running it once more.
ALTER TABLE runs ADD COLUMN recoveries INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN recovered_seq INTEGER NOT NULL DEFAULT 0;
