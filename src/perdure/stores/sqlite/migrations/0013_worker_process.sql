-- Prompt recovery on the same host (issue 16): each worker's process tag (see
-- perdure._process: boot id, pid namespace, start time), so that a worker on its host
-- can tell its process is gone, even after its pid was reused. NULL: recorded by an
-- earlier release, never reaped that way. On SQLite the lock file already tells a dead
-- worker; the tag keeps the workers' rows alike on every store.
ALTER TABLE workers ADD COLUMN process TEXT;
