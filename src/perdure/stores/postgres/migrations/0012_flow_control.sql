-- Flow control (issue 15): priorities, deduplication, debounce and concurrency limits
-- on runs, and the step limits every worker shares. See the SQLite store's 0010 for
-- the columns; here the claim and the step slots are functions, so that each is one
-- round trip, and the counting is serialized per key with transaction-scoped advisory
-- locks: two workers claiming at once must not both see the last free slot.
ALTER TABLE runs ADD COLUMN priority integer NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN dedupe_key text;
ALTER TABLE runs ADD COLUMN limit_key text COLLATE "C";
ALTER TABLE runs ADD COLUMN limit_n integer;

CREATE UNIQUE INDEX runs_dedupe ON runs (workflow, dedupe_key)
    WHERE dedupe_key IS NOT NULL AND status IN ('pending', 'running', 'blocked');
-- The live runs of each limit key (an ended run leaves it): a key's holders by range,
-- and every key's at once (`perdure_limits_full`) without reading ended runs.
CREATE INDEX runs_limit ON runs (limit_key, status, owner)
    WHERE limit_key IS NOT NULL AND status IN ('pending', 'running', 'blocked');

CREATE TABLE step_slots (
    holder    text COLLATE "C" PRIMARY KEY,
    key       text COLLATE "C" NOT NULL,
    worker_id text COLLATE "C" NOT NULL,
    limit_n   integer NOT NULL,
    taken_at  timestamptz NOT NULL
);
CREATE INDEX step_slots_key ON step_slots (key);

CREATE TABLE step_starts (
    key        text COLLATE "C" NOT NULL,
    started_at timestamptz NOT NULL,
    holder     text COLLATE "C" NOT NULL,
    rate_count integer NOT NULL,
    period_us  bigint NOT NULL
);
CREATE INDEX step_starts_key ON step_starts (key, started_at);

-- The runs holding a slot of a limit key: from their first claim until they end.
CREATE FUNCTION perdure_limit_used(p_key text) RETURNS bigint LANGUAGE sql STABLE AS $$
    SELECT count(*) FROM runs
     WHERE limit_key = p_key AND status IN ('pending', 'running', 'blocked')
       AND (status <> 'pending' OR owner IS NOT NULL)
$$;

-- The limit keys whose slots are all held, each with its holders: read once per claim
-- (or wake-up time) rather than counted again for each run waiting on them (a hot key
-- with 190 runs waiting made each claim count 190 times).
CREATE FUNCTION perdure_limits_held() RETURNS TABLE (limit_key text, used bigint)
LANGUAGE sql STABLE AS $$
    SELECT limit_key, count(*) FROM runs
     WHERE limit_key IS NOT NULL AND status IN ('pending', 'running', 'blocked')
       AND (status <> 'pending' OR owner IS NOT NULL)
     GROUP BY limit_key
$$;

-- Claim up to p_limit due runs, highest priority first, then oldest wake_at. A pending
-- run with a limit is taken only while its key has a free slot, counted under the
-- key's advisory lock (tried, not waited for: a key another claimer is counting is
-- left to it, and no claim ever waits on another). Returns the claimed rows, in order.
-- A run of a key this very claim fills is skipped, and the claim takes fewer.
CREATE FUNCTION perdure_claim(
    p_worker text, p_at timestamptz, p_limit integer, p_workflows text[]
) RETURNS SETOF runs LANGUAGE plpgsql AS $$
DECLARE
    r record;
    v_taken integer := 0;
    v_row runs;
BEGIN
    FOR r IN
        WITH held AS MATERIALIZED (SELECT * FROM perdure_limits_held())
        SELECT id, status, runs.limit_key, limit_n FROM runs
         WHERE owner IS NULL AND wake_at IS NOT NULL AND wake_at <= p_at
           AND status IN ('pending', 'running', 'blocked')
           AND (p_workflows IS NULL OR workflow = ANY(p_workflows))
           AND (runs.limit_key IS NULL OR status <> 'pending' OR NOT EXISTS (
                SELECT 1 FROM held WHERE held.limit_key = runs.limit_key
                                     AND held.used >= runs.limit_n))
         ORDER BY priority DESC, wake_at, id
         LIMIT p_limit  -- each row read is locked until commit: read no more than taken
           FOR UPDATE SKIP LOCKED
    LOOP
        EXIT WHEN v_taken >= p_limit;
        IF r.limit_key IS NOT NULL AND r.status = 'pending' THEN
            CONTINUE WHEN NOT pg_try_advisory_xact_lock(hashtext('perdure-limit:' || r.limit_key));
            CONTINUE WHEN perdure_limit_used(r.limit_key) >= r.limit_n;
        END IF;
        UPDATE runs SET owner = p_worker, wake_at = NULL, updated_at = p_at
         WHERE id = r.id RETURNING * INTO v_row;
        v_taken := v_taken + 1;
        RETURN NEXT v_row;
    END LOOP;
END $$;

-- A step attempt asks for a slot of its step's concurrency and a place in its rate's
-- window, both or neither. Returns (granted, retry_at): retry_at is when the window
-- has room again (a rate), NULL to wait for a slot to be given back. Slots of workers
-- no longer registered are not counted (and are cleared here).
CREATE FUNCTION perdure_take_step_slot(
    p_worker text, p_holder text, p_key text, p_n integer,
    p_rate_key text, p_rate_count integer, p_period_us bigint, p_at timestamptz,
    OUT granted boolean, OUT retry_at timestamptz
) LANGUAGE plpgsql AS $$
DECLARE
    v_used bigint;
    v_oldest timestamptz;
    v_window timestamptz;
BEGIN
    -- Not synced at commit: a slot or a start lost to a power cut was its worker's, and
    -- that worker is gone with it (its slots are not counted once it is reaped).
    PERFORM set_config('synchronous_commit', 'off', true);
    granted := false;
    IF p_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('perdure-step:' || p_key));
        IF EXISTS (SELECT 1 FROM step_slots WHERE holder = p_holder) THEN
            granted := true;
            RETURN;
        END IF;
        DELETE FROM step_slots WHERE key = p_key
           AND worker_id NOT IN (SELECT id FROM workers);
        SELECT count(*) INTO v_used FROM step_slots WHERE key = p_key;
        IF v_used >= p_n THEN
            RETURN;
        END IF;
    END IF;
    IF p_rate_key IS NOT NULL THEN
        PERFORM pg_advisory_xact_lock(hashtext('perdure-rate:' || p_rate_key));
        v_window := p_at - make_interval(secs => p_period_us / 1e6);
        DELETE FROM step_starts WHERE key = p_rate_key AND started_at <= v_window;
        SELECT count(*), min(started_at) INTO v_used, v_oldest
          FROM step_starts WHERE key = p_rate_key;
        IF v_used >= p_rate_count THEN
            retry_at := v_oldest + make_interval(secs => p_period_us / 1e6);
            RETURN;
        END IF;
        INSERT INTO step_starts (key, started_at, holder, rate_count, period_us)
        VALUES (p_rate_key, p_at, p_holder, p_rate_count, p_period_us);
    END IF;
    IF p_key IS NOT NULL THEN
        INSERT INTO step_slots (holder, key, worker_id, limit_n, taken_at)
        VALUES (p_holder, p_key, p_worker, p_n, p_at);
    END IF;
    granted := true;
END $$;

-- A step attempt gives its slot back; not synced, as taking it was not.
CREATE FUNCTION perdure_release_step_slot(p_holder text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM set_config('synchronous_commit', 'off', true);
    DELETE FROM step_slots WHERE holder = p_holder;
END $$;
