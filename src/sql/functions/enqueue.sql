-- fastjobs PostgreSQL functions: enqueues (plain, with unique keys, with
-- parents or limits). Placeholders, planning pins and re-application: see
-- claim.sql.

-- Job ids are unique across live and finished jobs (until cleanup removes the
-- finished one): enqueue calls this for an id found among finished jobs.
--
-- Enqueue looks for finished ids AFTER its INSERT, not before: an ack moving
-- a job of the same id to finished_jobs may be in flight. The INSERT waits on
-- jobs_pkey for that row and, once the ack commits (row gone), stores a second
-- job under the id; the look after it, in a statement with a fresh snapshot,
-- sees the finished row and aborts the enqueue. (Looked for first, the id was
-- not finished yet: the job ran twice and its second ack failed on
-- finished_jobs_pkey; seen with several workers enqueuing one periodic tick.)
CREATE OR REPLACE FUNCTION {schema}.refuse_finished_id(p_id text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE unique_violation USING
        MESSAGE = format('job id %s already exists (it has finished; ids are unique until cleanup)', quote_literal(p_id)),
        CONSTRAINT = 'finished_jobs_pkey';
END
$$;

-- Enqueue a batch without unique keys: one INSERT from the unnested arrays, and
-- one NOTIFY per queue (delivered at commit: a rolled-back enqueue wakes no
-- one). Ids are unique across live and finished jobs.
--
-- Every enqueue takes each job's task name (p_tasks) and its tags (p_tags: per
-- job, its tags joined by the unit separator U+001F, which the App refuses in
-- a tag, or NULL; p_tags NULL when no job of the batch has tags: the common
-- batch pays nothing for them). One string per job rather than one flat array
-- of every tag sliced per job: a slice reads through the whole array, which
-- made a batch of 1,000 jobs with two tags each enqueue at half the rate.
-- p_events: publish an enqueued event per job stored (events.sql).
CREATE OR REPLACE FUNCTION {schema}.enqueue(
    p_ids text[], p_queues text[], p_priorities bigint[], p_delays double precision[],
    p_max_attempts integer[], p_bodies bytea[], p_tasks text[], p_tags text[],
    p_events boolean
) RETURNS void LANGUAGE plpgsql
{PLANNING_PINS} AS $$
BEGIN
    INSERT INTO {schema}.jobs (id, queue, state, priority, seq, max_attempts, enqueued_at, run_at, body, task, tags)
    SELECT n.id, n.queue, CASE WHEN n.delay > 0 THEN {SCHEDULED} ELSE {QUEUED} END, n.priority,
           nextval('{schema}.job_seq'), n.max_attempts, now(),
           CASE WHEN n.delay > 0 THEN now() + n.delay * interval '1 second' ELSE now() END,
           n.body, n.task, {JOB_TAGS}
    FROM unnest(p_ids, p_queues, p_priorities, p_delays, p_max_attempts, p_bodies, p_tasks, p_tags)
        WITH ORDINALITY AS n(id, queue, priority, delay, max_attempts, body, task, tags, ord)
    ORDER BY n.ord;
    PERFORM {schema}.refuse_finished_id(f.id) FROM {schema}.finished_jobs f WHERE f.id = ANY (p_ids);
    PERFORM pg_notify({channel}, q) FROM (SELECT DISTINCT unnest(p_queues) AS q) AS woken;
    IF p_events THEN
        PERFORM {schema}.publish(0::smallint, p_ids, p_tasks, p_queues);
    END IF;
END
$$;

-- The enqueue of fastjobs before the operations layer (functions revision 3),
-- for processes of that version during a rolling upgrade: no task, no tags,
-- no events.
CREATE OR REPLACE FUNCTION {schema}.enqueue(
    p_ids text[], p_queues text[], p_priorities bigint[], p_delays double precision[],
    p_max_attempts integer[], p_bodies bytea[]
) RETURNS void LANGUAGE sql AS $$
    SELECT {schema}.enqueue(p_ids, p_queues, p_priorities, p_delays, p_max_attempts, p_bodies,
                            array_fill(''::text, ARRAY[cardinality(p_ids)]), NULL, false)
$$;

-- Enqueue a batch in which some jobs carry a unique_key. A job whose key is
-- held (by a live job of its queue, or by one that succeeded less than its
-- unique_ttl ago) is not stored; for every keyed job this returns its
-- position and the id of the job that holds its key now (its own id if it was
-- stored, NULL if the holder vanished meanwhile: the caller tries again).
--
-- Why the second look at held keys after the INSERT: an ack that moves the
-- live holder to finished_jobs may be running while this INSERT starts. The
-- INSERT then waits on jobs_unique_key for the holder's row, and once the ack
-- commits (the row gone) stores its own job. Each statement of a function
-- takes a new snapshot, so the look after the INSERT sees the ack's hold, and
-- takes back the job it should not have stored. With no ack in flight, the
-- NOT EXISTS of the INSERT already left it out.
CREATE OR REPLACE FUNCTION {schema}.enqueue_unique(
    p_ids text[], p_queues text[], p_priorities bigint[], p_delays double precision[],
    p_max_attempts integer[], p_bodies bytea[], p_unique_keys text[], p_unique_ttls double precision[],
    p_tasks text[], p_tags text[], p_events boolean
) RETURNS TABLE (job_position integer, holder_id text) LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_stored integer;
BEGIN
    INSERT INTO {schema}.jobs
        (id, queue, state, priority, seq, max_attempts, enqueued_at, run_at, unique_key, unique_ttl, body, task, tags)
    SELECT n.id, n.queue, CASE WHEN n.delay > 0 THEN {SCHEDULED} ELSE {QUEUED} END, n.priority,
           nextval('{schema}.job_seq'), n.max_attempts, now(),
           CASE WHEN n.delay > 0 THEN now() + n.delay * interval '1 second' ELSE now() END,
           n.unique_key, CASE WHEN n.unique_ttl > 0 THEN n.unique_ttl END, n.body, n.task, {JOB_TAGS}
    FROM unnest(p_ids, p_queues, p_priorities, p_delays, p_max_attempts, p_bodies, p_unique_keys, p_unique_ttls,
                p_tasks, p_tags)
        WITH ORDINALITY AS n(id, queue, priority, delay, max_attempts, body, unique_key, unique_ttl, task, tags, ord)
    WHERE n.unique_key IS NULL OR NOT EXISTS (
        SELECT 1 FROM {schema}.finished_jobs h
        WHERE h.queue = n.queue AND h.unique_key = n.unique_key AND h.unique_until > now())
    ORDER BY n.ord
    ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL DO NOTHING;
    GET DIAGNOSTICS v_stored = ROW_COUNT;
    PERFORM {schema}.refuse_finished_id(f.id) FROM {schema}.finished_jobs f WHERE f.id = ANY (p_ids);
    IF v_stored > 0 THEN
        DELETE FROM {schema}.jobs j
        USING unnest(p_ids, p_queues, p_unique_keys) AS n(id, queue, unique_key)
        WHERE j.id = n.id AND n.unique_key IS NOT NULL AND EXISTS (
            SELECT 1 FROM {schema}.finished_jobs h
            WHERE h.queue = n.queue AND h.unique_key = n.unique_key AND h.unique_until > now());
        PERFORM pg_notify({channel}, q) FROM (SELECT DISTINCT unnest(p_queues) AS q) AS woken;
        IF p_events THEN
            -- The jobs of the batch that are stored now (not those whose key was held).
            PERFORM {schema}.publish(0::smallint, array_agg(j.id), array_agg(j.task), array_agg(j.queue))
            FROM {schema}.jobs j WHERE j.id = ANY (p_ids);
        END IF;
    END IF;
    RETURN QUERY
        {UNIQUE_HOLDERS};
END
$$;

-- Enqueue a batch in which some jobs have parents or a limit (and maybe unique
-- keys: the rules and the result are enqueue_unique's). p_dep_counts gives each
-- job's number of parents; p_dep_children / p_dep_parents list the (child,
-- parent) pairs in job order. A parent that is neither live nor finished
-- raises foreign_key_violation (constraint job_deps_parent, DETAIL the child,
-- HINT the parent): the whole batch is rolled back.
--
-- The race with a parent finishing meanwhile: the children and their job_deps
-- rows are inserted first; then the live parents are read FOR KEY SHARE, which
-- waits for a parent's ack / cancel in flight (they DELETE the row) and, once
-- held, makes any later one wait for this transaction. A parent therefore
-- either finished before the look (it is found in finished_jobs by the next
-- statement and counted as done here; its stale job_deps row is dropped), or
-- finishes after this transaction commits, and its settle_dependants sees the
-- job_deps row. (Claims lock FOR NO KEY UPDATE, which a KEY SHARE does not
-- block.)
CREATE OR REPLACE FUNCTION {schema}.enqueue_flow(
    p_ids text[], p_queues text[], p_priorities bigint[], p_delays double precision[],
    p_max_attempts integer[], p_bodies bytea[], p_unique_keys text[], p_unique_ttls double precision[],
    p_modes smallint[], p_dep_counts integer[], p_limit_keys text[], p_limit_concurrency integer[],
    p_limit_rates integer[], p_limit_pers double precision[], p_dep_children text[], p_dep_parents text[],
    p_tasks text[], p_tags text[], p_events boolean
) RETURNS TABLE (job_position integer, holder_id text) LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_stored    text[];
    v_unstored  text[];
    v_live      text[];
    v_child     text;
    v_parent    text;
    v_cancelled text[];
BEGIN
    IF p_limit_keys IS NOT NULL THEN
        -- The settings row is only written when they change, so that enqueues
        -- do not queue up behind the claims holding the key's lock.
        INSERT INTO {schema}.limit_keys (queue, key, concurrency, rate, per)
        SELECT DISTINCT ON (l.queue, l.key) l.queue, l.key, l.concurrency, l.rate, l.per
        FROM unnest(p_queues, p_limit_keys, p_limit_concurrency, p_limit_rates, p_limit_pers)
            WITH ORDINALITY AS l(queue, key, concurrency, rate, per, ord)
        WHERE l.key IS NOT NULL
        ORDER BY l.queue, l.key, l.ord DESC
        ON CONFLICT (queue, key) DO NOTHING;
        UPDATE {schema}.limit_keys k
        SET concurrency = l.concurrency, rate = l.rate, per = l.per
        FROM (SELECT DISTINCT ON (u.queue, u.key) u.queue, u.key, u.concurrency, u.rate, u.per
              FROM unnest(p_queues, p_limit_keys, p_limit_concurrency, p_limit_rates, p_limit_pers)
                  WITH ORDINALITY AS u(queue, key, concurrency, rate, per, ord)
              WHERE u.key IS NOT NULL
              ORDER BY u.queue, u.key, u.ord DESC) AS l
        WHERE k.queue = l.queue AND k.key = l.key
          AND (k.concurrency, k.rate, k.per) IS DISTINCT FROM (l.concurrency, l.rate, l.per);
    END IF;

    WITH n AS (
        SELECT u.*, (sum(u.dep_count) OVER (ORDER BY u.ord))::integer AS dep_end
        FROM unnest(p_ids, p_queues, p_priorities, p_delays, p_max_attempts, p_bodies, p_unique_keys,
                    p_unique_ttls, p_modes, p_dep_counts, p_limit_keys, p_tasks, p_tags)
            WITH ORDINALITY AS u(id, queue, priority, delay, max_attempts, body, unique_key, unique_ttl,
                                 mode, dep_count, limit_key, task, tags, ord)
    ), stored AS (
        INSERT INTO {schema}.jobs
            (id, queue, state, priority, seq, max_attempts, enqueued_at, run_at, unique_key, unique_ttl, body,
             parents, dep_mode, pending_parents, failed_parents, limit_key, task, tags)
        SELECT n.id, n.queue, CASE WHEN n.dep_count > 0 THEN {WAITING} WHEN n.delay > 0 THEN {SCHEDULED} ELSE {QUEUED} END, n.priority,
               nextval('{schema}.job_seq'), n.max_attempts, now(),
               CASE WHEN n.delay > 0 THEN now() + n.delay * interval '1 second' ELSE now() END,
               n.unique_key, CASE WHEN n.unique_ttl > 0 THEN n.unique_ttl END, n.body,
               CASE WHEN n.dep_count > 0 THEN p_dep_parents[(n.dep_end - n.dep_count + 1):n.dep_end] END,
               CASE WHEN n.dep_count > 0 THEN n.mode END,
               CASE WHEN n.dep_count > 0 THEN n.dep_count END,
               CASE WHEN n.dep_count > 0 THEN 0 END,
               n.limit_key, n.task, {JOB_TAGS}
        FROM n
        WHERE n.unique_key IS NULL OR NOT EXISTS (
            SELECT 1 FROM {schema}.finished_jobs h
            WHERE h.queue = n.queue AND h.unique_key = n.unique_key AND h.unique_until > now())
        ORDER BY n.ord
        ON CONFLICT (queue, unique_key) WHERE unique_key IS NOT NULL DO NOTHING
        RETURNING id
    )
    SELECT array_agg(stored.id) INTO v_stored FROM stored;
    v_stored := coalesce(v_stored, '{}');
    PERFORM {schema}.refuse_finished_id(f.id) FROM {schema}.finished_jobs f WHERE f.id = ANY (p_ids);
    IF cardinality(v_stored) > 0 AND p_unique_keys IS NOT NULL THEN
        -- enqueue_unique's second look at held keys (see there).
        WITH taken_back AS (
            DELETE FROM {schema}.jobs j
            USING unnest(p_ids, p_queues, p_unique_keys) AS n(id, queue, unique_key)
            WHERE j.id = n.id AND n.unique_key IS NOT NULL AND EXISTS (
                SELECT 1 FROM {schema}.finished_jobs h
                WHERE h.queue = n.queue AND h.unique_key = n.unique_key AND h.unique_until > now())
            RETURNING j.id
        )
        SELECT array_agg(taken_back.id) INTO v_unstored FROM taken_back;
        IF v_unstored IS NOT NULL THEN
            v_stored := ARRAY(SELECT s FROM unnest(v_stored) AS s WHERE s <> ALL (v_unstored));
        END IF;
    END IF;

    IF cardinality(p_dep_children) > 0 AND cardinality(v_stored) > 0 THEN
        INSERT INTO {schema}.job_deps (parent, child)
        SELECT d.parent, d.child FROM unnest(p_dep_children, p_dep_parents) AS d(child, parent)
        WHERE d.child = ANY (v_stored)
        ON CONFLICT DO NOTHING;
        -- The look at the parents, after the inserts (see above). A parent that
        -- finished while this waited for its row is not returned.
        SELECT array_agg(l.id) INTO v_live FROM (
            SELECT j.id FROM {schema}.jobs j
            WHERE j.id = ANY (ARRAY(SELECT d.parent FROM unnest(p_dep_children, p_dep_parents) AS d(child, parent)
                                    WHERE d.child = ANY (v_stored)))
            ORDER BY j.id
            FOR KEY SHARE OF j) AS l;
        v_live := coalesce(v_live, '{}');
        -- A fresh snapshot: it sees the finish of any parent this waited for.
        SELECT d.child, d.parent INTO v_child, v_parent
        FROM unnest(p_dep_children, p_dep_parents) WITH ORDINALITY AS d(child, parent, ord)
        WHERE d.child = ANY (v_stored) AND d.parent <> ALL (v_live)
          AND NOT EXISTS (SELECT 1 FROM {schema}.finished_jobs f WHERE f.id = d.parent)
        ORDER BY d.ord
        LIMIT 1;
        IF FOUND THEN
            RAISE foreign_key_violation USING
                MESSAGE = format('job %s depends on %s, which does not exist', quote_literal(v_child),
                                 quote_literal(v_parent)),
                DETAIL = v_child, HINT = v_parent, CONSTRAINT = 'job_deps_parent';
        END IF;
        -- Parents that have finished already count as done now: their rows go.
        DELETE FROM {schema}.job_deps d
        USING unnest(p_dep_children, p_dep_parents) AS x(child, parent)
        WHERE d.parent = x.parent AND d.child = x.child AND x.child = ANY (v_stored) AND x.parent <> ALL (v_live);
        UPDATE {schema}.jobs j
        SET pending_parents = c.pending, failed_parents = c.failed
        FROM (
            SELECT d.child, (count(*) FILTER (WHERE d.parent = ANY (v_live)))::integer AS pending,
                   (count(*) FILTER (WHERE f.state IN ({DEAD}, {CANCELLED})))::integer AS failed
            FROM unnest(p_dep_children, p_dep_parents) AS d(child, parent)
            LEFT JOIN {schema}.finished_jobs f ON f.id = d.parent AND d.parent <> ALL (v_live)
            WHERE d.child = ANY (v_stored)
            GROUP BY d.child
        ) AS c
        WHERE j.id = c.child AND (j.pending_parents <> c.pending OR c.failed > 0);
    END IF;
    IF cardinality(v_stored) > 0 THEN
        PERFORM pg_notify({channel}, q) FROM (SELECT DISTINCT unnest(p_queues) AS q) AS woken;
        IF p_events THEN
            PERFORM {schema}.publish(0::smallint, array_agg(n.id ORDER BY n.ord), array_agg(n.task ORDER BY n.ord),
                                     array_agg(n.queue ORDER BY n.ord))
            FROM unnest(p_ids, p_tasks, p_queues) WITH ORDINALITY AS n(id, task, queue, ord)
            WHERE n.id = ANY (v_stored);
        END IF;
    END IF;
    IF cardinality(p_dep_children) > 0 AND cardinality(v_stored) > 0 THEN
        -- Children resolved at once (their parents had finished): after their
        -- enqueued events, the cancelled ones publish theirs.
        v_cancelled := {schema}.resolve_waiting(v_stored);
        IF cardinality(v_cancelled) > 0 THEN
            IF p_events THEN
                PERFORM {schema}.publish(7::smallint, array_agg(f.id), array_agg(f.task), array_agg(f.queue))
                FROM {schema}.finished_jobs f WHERE f.id = ANY (v_cancelled);
            END IF;
            PERFORM {schema}.settle(v_cancelled, array_fill(true, ARRAY[cardinality(v_cancelled)]), p_events);
        END IF;
    END IF;
    IF p_unique_keys IS NOT NULL THEN
        RETURN QUERY
            {UNIQUE_HOLDERS};
    END IF;
END
$$;
