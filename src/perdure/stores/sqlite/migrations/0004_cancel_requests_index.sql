-- A worker's pass asks for the cancel requests of the runs it holds. Through
-- runs_owner that read visited every held run, so with many sleeping runs held every
-- pass cost more, and loading 100,000 runs took twice as long per run as 20,000. Runs
-- with a cancel request are few, and this index holds only them.
CREATE INDEX runs_cancel_requested ON runs (owner, id) WHERE cancel_requested_at IS NOT NULL;
