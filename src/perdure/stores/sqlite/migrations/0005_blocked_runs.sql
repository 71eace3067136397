-- A run whose replay diverged from its log, or whose workflow code raised one of its
-- block_on errors, is set aside as 'blocked' rather than failed (issue 12): the reason
-- is kept on the row, for listings and the dashboard; the log keeps the history of
-- every run_blocked and run_unblocked. A blocked run is unheld with no wake_at, so
-- no claim takes it until it is unblocked.
ALTER TABLE runs ADD COLUMN blocked_reason TEXT;
