-- fastjobs PostgreSQL functions: acting on jobs by id (cancel, delete, retry),
-- each one statement over the batch of ids (at most MAX_IDS), set-based.
-- Placeholders, planning pins and re-application: see claim.sql. Each returns
-- the ids it acted on; the caller reports per id. Rows are locked in id order
-- (the primary key's order for = ANY), so two calls sharing ids cannot
-- deadlock with each other. p_events: publish the events (events.sql).

-- Cancel the jobs that have not finished: kept in finished_jobs as cancelled;
-- an active one's lease is void (its worker's ack is stale). Their dependants
-- follow (settle), and a queue whose active limited job is cancelled is woken
-- (a slot of its key is free again).
CREATE OR REPLACE FUNCTION {schema}.cancel_jobs(p_ids text[], p_events boolean) RETURNS text[] LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_ids    text[];
    v_tasks  text[];
    v_queues text[];
    v_wake   text[];
BEGIN
    WITH cancelled AS (
        DELETE FROM {schema}.jobs j WHERE j.id = ANY (p_ids) RETURNING j.*
    ), kept AS (
        {KEEP_CANCELLED}
    )
    SELECT array_agg(c.id), array_agg(c.task), array_agg(c.queue),
           array_agg(DISTINCT c.queue) FILTER (WHERE c.limit_key IS NOT NULL AND c.state = {ACTIVE})
    INTO v_ids, v_tasks, v_queues, v_wake FROM cancelled c;
    IF v_ids IS NULL THEN
        RETURN '{}';
    END IF;
    IF v_wake IS NOT NULL THEN
        PERFORM pg_notify({channel}, q) FROM unnest(v_wake) AS q;
    END IF;
    IF p_events THEN
        PERFORM {schema}.publish(7::smallint, v_ids, v_tasks, v_queues);
    END IF;
    IF EXISTS (SELECT 1 FROM {schema}.job_deps) THEN
        PERFORM {schema}.settle(v_ids, array_fill(true, ARRAY[cardinality(v_ids)]), p_events);
    END IF;
    RETURN v_ids;
END
$$;

-- Delete jobs that are not active, live or finished, with everything kept
-- about them: the row (body, result, errors, progress), a waiting job's
-- registrations on its parents (found through its parents column: job_deps'
-- key is (parent, child)); its unique key and any window go with the row. A
-- deleted live job's waiting dependants are settled as if it had been
-- cancelled. Limits keep no per-job state outside the row (an active job,
-- the one that counts, is not deleted).
CREATE OR REPLACE FUNCTION {schema}.delete_jobs(p_ids text[], p_events boolean) RETURNS text[] LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_live     text[];
    v_finished text[];
    v_tasks    text[];
    v_queues   text[];
    v_ftasks   text[];
    v_fqueues  text[];
BEGIN
    WITH gone AS (
        DELETE FROM {schema}.jobs j WHERE j.id = ANY (p_ids) AND (j.state + 0) <> {ACTIVE}
        RETURNING j.id, j.task, j.queue, j.state, j.parents
    ), unregistered AS (
        DELETE FROM {schema}.job_deps d
        USING gone g
        WHERE g.state = {WAITING} AND d.parent = ANY (g.parents) AND d.child = g.id
    )
    SELECT array_agg(g.id), array_agg(g.task), array_agg(g.queue) INTO v_live, v_tasks, v_queues FROM gone g;
    WITH gone AS (
        DELETE FROM {schema}.finished_jobs f WHERE f.id = ANY (p_ids) RETURNING f.id, f.task, f.queue
    )
    SELECT array_agg(g.id), array_agg(g.task), array_agg(g.queue) INTO v_finished, v_ftasks, v_fqueues FROM gone g;
    IF p_events AND (v_live IS NOT NULL OR v_finished IS NOT NULL) THEN
        PERFORM {schema}.publish(8::smallint, coalesce(v_live, '{}') || coalesce(v_finished, '{}'),
                                 coalesce(v_tasks, '{}') || coalesce(v_ftasks, '{}'),
                                 coalesce(v_queues, '{}') || coalesce(v_fqueues, '{}'));
    END IF;
    IF v_live IS NOT NULL AND EXISTS (SELECT 1 FROM {schema}.job_deps) THEN
        PERFORM {schema}.settle(v_live, array_fill(true, ARRAY[cardinality(v_live)]), p_events);
    END IF;
    RETURN coalesce(v_live, '{}') || coalesce(v_finished, '{}');
END
$$;

-- Put dead or cancelled jobs back in their queue: queued, ready now, at the
-- end of its FIFO (a new seq), attempt 0 for a fresh set of max_attempts; the
-- errors stay, as the job's history. A job takes its unique key again: if a
-- live job of its queue holds it (ON CONFLICT, which also settles two of the
-- batch sharing a key), or one that succeeded within its unique_ttl, it stays
-- where it is. Its dependants were settled when it finished: none is revived.
--
-- p_body, p_queue, p_priority, p_max_attempts (one job; NULL: not editing)
-- replace the job's before it goes back. A limited job moved to another queue
-- takes its key's settings there (limit_keys is per queue), or claim would
-- find no row to lock for it and never lease it.
--
-- As in enqueue_unique, a job that succeeded while the INSERT waited on the
-- unique index may hold the key after all: the statement after the INSERT (a
-- fresh snapshot) takes such jobs back before the finished rows are removed.
CREATE OR REPLACE FUNCTION {schema}.retry_jobs(
    p_ids text[], p_body bytea, p_queue text, p_priority bigint, p_max_attempts integer, p_events boolean
) RETURNS text[] LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_ids    text[];
    v_back   text[];
    v_tasks  text[];
    v_queues text[];
BEGIN
    PERFORM 1 FROM {schema}.finished_jobs f
    WHERE f.id = ANY (p_ids) AND f.state IN ({DEAD}, {CANCELLED})
    ORDER BY f.id
    FOR UPDATE;
    IF p_queue IS NOT NULL THEN
        INSERT INTO {schema}.limit_keys (queue, key, concurrency, rate, per)
        SELECT p_queue, k.key, k.concurrency, k.rate, k.per
        FROM {schema}.finished_jobs f
        JOIN {schema}.limit_keys k ON k.queue = f.queue AND k.key = f.limit_key
        WHERE f.id = ANY (p_ids) AND f.state IN ({DEAD}, {CANCELLED})
        ON CONFLICT (queue, key) DO NOTHING;
    END IF;
    WITH revived AS (
        INSERT INTO {schema}.jobs
            (id, queue, state, priority, seq, attempt, max_attempts, token, enqueued_at, run_at,
             started_at, unique_key, unique_ttl, body, errors, progress,
             parents, dep_mode, pending_parents, failed_parents, limit_key, task, tags)
        SELECT f.id, coalesce(p_queue, f.queue), {QUEUED}, coalesce(p_priority, f.priority),
               nextval('{schema}.job_seq'), 0, coalesce(p_max_attempts, f.max_attempts), f.token,
               f.enqueued_at, now(), f.started_at, f.unique_key, f.unique_ttl, coalesce(p_body, f.body), f.errors,
               f.progress, f.parents, f.dep_mode, f.pending_parents, f.failed_parents, f.limit_key, f.task, f.tags
        FROM {schema}.finished_jobs f
        WHERE f.id = ANY (p_ids) AND f.state IN ({DEAD}, {CANCELLED})
          AND (f.unique_key IS NULL OR NOT EXISTS (
              SELECT 1 FROM {schema}.finished_jobs h
              WHERE h.queue = coalesce(p_queue, f.queue) AND h.unique_key = f.unique_key AND h.unique_until > now()))
        ORDER BY f.id
        ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING id
    )
    SELECT array_agg(r.id) INTO v_ids FROM revived r;
    IF v_ids IS NULL THEN
        RETURN '{}';
    END IF;
    -- The second look (see above).
    WITH taken_back AS (
        DELETE FROM {schema}.jobs j
        WHERE j.id = ANY (v_ids) AND j.unique_key IS NOT NULL AND EXISTS (
            SELECT 1 FROM {schema}.finished_jobs h
            WHERE h.queue = j.queue AND h.unique_key = j.unique_key AND h.unique_until > now() AND h.id <> j.id)
        RETURNING j.id
    )
    SELECT array_agg(t.id) INTO v_back FROM taken_back t;
    IF v_back IS NOT NULL THEN
        v_ids := ARRAY(SELECT i FROM unnest(v_ids) AS i WHERE i <> ALL (v_back));
    END IF;
    DELETE FROM {schema}.finished_jobs f WHERE f.id = ANY (v_ids);
    SELECT array_agg(j.task), array_agg(j.queue), array_agg(j.id) INTO v_tasks, v_queues, v_ids
    FROM {schema}.jobs j WHERE j.id = ANY (v_ids);
    IF v_ids IS NULL THEN
        RETURN '{}';
    END IF;
    PERFORM pg_notify({channel}, q) FROM (SELECT DISTINCT unnest(v_queues) AS q) AS woken;
    IF p_events THEN
        PERFORM {schema}.publish(0::smallint, v_ids, v_tasks, v_queues);
    END IF;
    RETURN v_ids;
END
$$;
