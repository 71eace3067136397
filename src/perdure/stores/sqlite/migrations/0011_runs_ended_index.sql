-- The Metrics page (issue 17) counts the runs that ended in a window, per bucket of
-- time, by outcome and workflow, and reads the steps of the most recently ended ones.
-- SQLite groups by sorting every row it counts (a week of a million runs: 0.9 s), so
-- the store counts each (outcome, workflow, bucket) as a range of this index instead:
-- one seek, then index entries counted without reading a row (BENCHMARKS.md, "Metrics
-- page"). One entry per run, made when it ends; nothing on a step's append.
CREATE INDEX runs_ended ON runs (status, workflow, completed_at, id)
    WHERE completed_at IS NOT NULL;
