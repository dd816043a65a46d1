-- fastjobs named queries for PostgreSQL.
--
-- Each query starts at a "-- name: <name>" line and runs as a prepared
-- statement (asyncpg prepares and caches it per connection). {schema} is the
-- quoted schema name and {channel} the quoted LISTEN/NOTIFY channel, both built
-- from a validated identifier when the backend is created; {QUEUED} and the
-- other state names are the fastjobs._core constants; every other value is a
-- bind parameter. Times come from the server's now() only. Columns are named:
-- the backend reads rows by name.

-- name: enqueue
-- Every enqueue ends with the jobs' tasks, their tags (each job's joined by
-- U+001F; NULL without tags) and whether to publish events.
SELECT {schema}.enqueue($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::integer[], $6::bytea[], $7::text[],
                        $8::text[], $9::boolean)

-- name: enqueue_unique
SELECT job_position, holder_id
FROM {schema}.enqueue_unique($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::integer[], $6::bytea[], $7::text[],
                             $8::float8[], $9::text[], $10::text[], $11::boolean)

-- name: enqueue_flow
SELECT job_position, holder_id
FROM {schema}.enqueue_flow($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::integer[], $6::bytea[], $7::text[],
                           $8::float8[], $9::smallint[], $10::integer[], $11::text[], $12::integer[], $13::integer[],
                           $14::float8[], $15::text[], $16::text[], $17::text[], $18::text[], $19::boolean)

-- name: claim
SELECT claimed_ids, claimed_tokens, claimed_attempts, claimed_bodies
FROM {schema}.claim($1::text[], $2::integer, $3::float8, $4::bytea, $5::bytea, $6::bytea, $7::boolean)

-- name: ack
-- $7: publish events; $8-$15: the flush's history rows (NULL: none) and the retention of minute and hour points.
SELECT {schema}.ack($1::text[], $2::bigint[], $3::smallint[], $4::bytea[], $5::float8[], $6::boolean, $7::boolean,
                    $8::text[], $9::text[], $10::smallint[], $11::bigint[], $12::float8[], $13::bigint[], $14::float8,
                    $15::float8)

-- name: renew
SELECT {schema}.renew($1::text[], $2::bigint[], $3::float8[], $4::text, $5::text[], $6::float8)

-- name: register_worker
-- A worker's (re)start; workers gone for GONE_KEPT ($8 seconds) are forgotten
-- here, so the registry stays bounded without a sweeper.
WITH forgotten AS (
    DELETE FROM {schema}.workers
    WHERE last_seen < now() - (ttl + $8::float8) * interval '1 second'
)
INSERT INTO {schema}.workers (id, hostname, pid, queues, concurrency, version, started_at, last_seen, ttl)
VALUES ($1::text, $2::text, $3::integer, $4::text[], $5::integer, $6::text, now(), now(), $7::float8)
ON CONFLICT (id) DO UPDATE
SET hostname = EXCLUDED.hostname, pid = EXCLUDED.pid, queues = EXCLUDED.queues, concurrency = EXCLUDED.concurrency,
    version = EXCLUDED.version, started_at = EXCLUDED.started_at, last_seen = EXCLUDED.last_seen,
    ttl = EXCLUDED.ttl, running = '{}'

-- name: deregister_worker
DELETE FROM {schema}.workers WHERE id = $1::text RETURNING id

-- name: workers
-- Seen within GONE_KEPT ($1 seconds); alive decided here, on the server's clock.
SELECT id, hostname, pid, queues, concurrency, version, date_part('epoch', started_at) AS started_at,
       date_part('epoch', last_seen) AS last_seen, running,
       last_seen + ttl * interval '1 second' >= now() AS alive
FROM {schema}.workers
WHERE last_seen >= now() - (ttl + $1::float8) * interval '1 second'
ORDER BY started_at, id

-- name: recover
SELECT {schema}.recover_expired($1::bytea, $2::bytea, $3::bytea, $4::integer, $5::boolean)

-- name: promote_due
SELECT {schema}.promote_due($1::integer)

-- name: now
SELECT date_part('epoch', now())

-- name: wait_info
-- Seconds until a job of these queues may be ready: 0 if one is ready now, else
-- until the next due delayed job or the next lease to expire (NULL: none;
-- negative: already due). The next due job is looked up per queue (the first
-- entry of jobs_due_by_queue for each), then the earliest of those taken.
-- Paused queues are left out: their ready jobs would otherwise end every idle
-- wait at once, and the worker would spin between wait and an empty claim
-- until the resume (whose NOTIFY wakes the waiters). Ready limited jobs do not
-- end a wait either (they may be over their key's limit: the same spin); a
-- slot freed by an ack, cancel or recovery NOTIFYs the queue, and a key over
-- its rate ends the wait when its oldest lease leaves the window.
WITH w AS (
    SELECT ARRAY(
        SELECT u.queue FROM unnest($1::text[]) AS u(queue)
        WHERE NOT EXISTS (SELECT 1 FROM {schema}.paused_queues p WHERE p.queue = u.queue)) AS queues
)
SELECT CASE
    WHEN EXISTS (SELECT 1 FROM {schema}.jobs q
                 WHERE q.state = {QUEUED} AND q.limit_key IS NULL AND q.queue = ANY ((SELECT w.queues FROM w)::text[])) THEN 0.0
    ELSE date_part('epoch', least(
        (SELECT min(n.run_at)
         FROM unnest((SELECT w.queues FROM w)) AS w(queue)
         CROSS JOIN LATERAL (
             SELECT d.run_at FROM {schema}.jobs d
             WHERE d.state IN ({SCHEDULED}, {RETRY_PENDING}) AND d.queue = w.queue
             ORDER BY d.run_at
             LIMIT 1) AS n),
        (SELECT min(a.lease_until) FROM {schema}.jobs a WHERE a.state = {ACTIVE}),
        (SELECT min(g.leased_at + k.per * interval '1 second')
         FROM {schema}.limit_keys k
         CROSS JOIN LATERAL (
             SELECT l.leased_at FROM {schema}.limit_log l
             WHERE l.queue = k.queue AND l.key = k.key AND l.leased_at > now() - k.per * interval '1 second'
             ORDER BY l.leased_at
             LIMIT 1) AS g
         WHERE k.queue = ANY ((SELECT w.queues FROM w)::text[]) AND k.rate > 0
           AND EXISTS (SELECT 1 FROM {schema}.jobs r
                       WHERE r.state = {QUEUED} AND r.limit_key = k.key AND r.queue = k.queue))) - now())
END

-- name: get
-- get, list_live and list_finished name their columns as StoredJob's fields
-- (snippets.sql). The lists qualify their ORDER BY: a bare name would sort by
-- the output column (the epoch float), not the timestamp.
SELECT {LIVE_JOB_FIELDS}
FROM {schema}.jobs WHERE id = $1::text
UNION ALL
SELECT {FINISHED_JOB_FIELDS}
FROM {schema}.finished_jobs WHERE id = $1::text
LIMIT 1

-- name: list_live
SELECT {LIVE_JOB_FIELDS}
FROM {schema}.jobs j
WHERE {LIVE_STATE} = $1::integer
  AND ($2::text IS NULL OR queue = $2::text)
ORDER BY j.enqueued_at, j.id
LIMIT $3::bigint OFFSET $4::bigint

-- name: list_queued_first
-- list_jobs(QUEUED, queue) from its start (health checks and the dashboard ask
-- for the oldest ready job): list_live's state expression reads the whole
-- table; this reads the queued jobs of the queue from jobs_search_queue and
-- its due delayed ones from jobs_due_by_queue, each in order, and merges them.
SELECT * FROM (
    (SELECT {LIVE_JOB_FIELDS}, j.enqueued_at AS o_at, j.id AS o_id FROM {schema}.jobs j
     WHERE j.queue = $1::text AND j.state = {QUEUED}
       AND j.state IN ({SCHEDULED}, {QUEUED}, {RETRY_PENDING}, {WAITING})
     ORDER BY j.enqueued_at, j.id LIMIT $2::bigint)
    UNION ALL
    (SELECT {LIVE_JOB_FIELDS}, j.enqueued_at, j.id FROM {schema}.jobs j
     WHERE j.queue = $1::text AND j.state IN ({SCHEDULED}, {RETRY_PENDING}) AND j.run_at <= now()
     ORDER BY j.enqueued_at, j.id LIMIT $2::bigint)
) AS first ORDER BY o_at, o_id LIMIT $2::bigint

-- name: list_finished
SELECT {FINISHED_JOB_FIELDS}
FROM {schema}.finished_jobs f
WHERE state = $1::smallint AND ($2::text IS NULL OR queue = $2::text)
ORDER BY f.finished_at, f.id
LIMIT $3::bigint OFFSET $4::bigint

-- name: cancel_jobs
SELECT {schema}.cancel_jobs($1::text[], $2::boolean)

-- name: delete_jobs
SELECT {schema}.delete_jobs($1::text[], $2::boolean)

-- name: retry_jobs
-- $2-$5: the edit (NULL: none).
SELECT {schema}.retry_jobs($1::text[], $2::bytea, $3::text, $4::bigint, $5::integer, $6::boolean)

-- name: history
-- Points of one step ($1: 60 or 3600) with $2 <= at < $3, optionally of one
-- queue and/or task: the primary key's range, in its order (the backend sums
-- the shards of each point).
SELECT date_part('epoch', at) AS at, queue, task, outcome::integer AS outcome, runs, runtime_sum, buckets
FROM {schema}.history
WHERE step = $1::integer AND at >= to_timestamp($2::float8) AND at < to_timestamp($3::float8)
  AND ($4::text IS NULL OR queue = $4::text) AND ($5::text IS NULL OR task = $5::text)
ORDER BY at, queue, task, outcome

-- name: listen_events
-- An events() iterator's connection announces itself (publishers write events
-- only while a listener has a row), forgets the rows of listeners whose
-- sessions are gone, and learns where the events table ends: it reads what
-- comes after.
WITH gone AS (
    DELETE FROM {schema}.event_listeners l
    WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid)
), me AS (
    INSERT INTO {schema}.event_listeners (pid) VALUES (pg_backend_pid()) ON CONFLICT (pid) DO NOTHING
)
SELECT coalesce(max(seq), 0) FROM {schema}.events

-- name: read_events
-- The events after the last one a listener saw ($1), and those it is still
-- waiting for below it ($2: numbers skipped by a transaction not yet committed).
SELECT seq, payload FROM {schema}.events
WHERE seq > $1 OR seq = ANY ($2::bigint[])
ORDER BY seq LIMIT $3

-- name: trim_events
-- Events older than $1 seconds: every listener has read them long ago.
DELETE FROM {schema}.events WHERE at < now() - $1::float8 * interval '1 second'

-- name: unlisten_events
DELETE FROM {schema}.event_listeners WHERE pid = pg_backend_pid()

-- name: forget_listeners
-- cleanup: listeners whose sessions are gone (killed without unlistening).
WITH gone AS (
    DELETE FROM {schema}.event_listeners l
    WHERE NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = l.pid)
    RETURNING 1
)
SELECT count(*) FROM gone

-- name: stats
SELECT queue, {LIVE_STATE}::integer AS state,
       count(*) AS jobs
FROM {schema}.jobs GROUP BY 1, 2
UNION ALL
SELECT queue, state::integer, count(*) FROM {schema}.finished_jobs GROUP BY 1, 2

-- name: stats_estimated
-- stats, fast at any size (Backend.stats_estimated): every count exact up to
-- $1 (ESTIMATE_ABOVE), larger ones estimated from a sample of $2 heap pages.
-- One row per queue and reported state: jobs, the exact count, or at least $1 + 1
-- when capped; estimate, for a capped count, the sample's (NULL: none seen).
--
-- 1. The queues, exactly: a loose index scan (one descent per queue) of
--    jobs_search_queue (every live state but active) and of
--    finished_jobs_search_queue, plus the queues of the active jobs, read
--    through jobs_lease (as many as run at once; at most $1 + 1 of them).
-- 2. Per queue and state, a count that stops at $1 + 1 index entries (LIMIT):
--    a small count is exact, a large one costs $1 + 1 entries, whatever the
--    table holds. A scheduled or retry-pending job whose run_at has come is
--    queued, as in {LIVE_STATE}: counted through jobs_due_by_queue.
-- 3. Only if a count of a table was capped: that table's sample. $2 pages
--    spread evenly over the table (page (2i + 1) * pages / 2$2 for i < $2:
--    one page in the middle of each of $2 equal stretches), each read by a
--    TID range scan; a count is the sample's rows of that queue and state
--    times pages / pages sampled. Evenly spread pages stratify the sample by
--    position in the table, which is by time of insert: a queue that filled a
--    stretch of the table is neither missed nor counted twice, as a random
--    page sample (TABLESAMPLE) would risk. It reads the table as it is now, so
--    dead tuples and stale statistics (reltuples, n_live_tup: the planner's
--    estimates, off by half on a bloated, unvacuumed jobs table) do not skew
--    it; the same pages every time, so a dashboard's numbers do not flicker.
WITH RECURSIVE live_queues(queue) AS (
    (SELECT j.queue FROM {schema}.jobs j
     WHERE j.state IN ({SCHEDULED}, {QUEUED}, {RETRY_PENDING}, {WAITING})
     ORDER BY j.queue LIMIT 1)
    UNION ALL
    SELECT (SELECT j.queue FROM {schema}.jobs j
            WHERE j.state IN ({SCHEDULED}, {QUEUED}, {RETRY_PENDING}, {WAITING}) AND j.queue > l.queue
            ORDER BY j.queue LIMIT 1)
    FROM live_queues l WHERE l.queue IS NOT NULL
), finished_queues(queue) AS (
    (SELECT f.queue FROM {schema}.finished_jobs f ORDER BY f.queue LIMIT 1)
    UNION ALL
    SELECT (SELECT f.queue FROM {schema}.finished_jobs f WHERE f.queue > l.queue ORDER BY f.queue LIMIT 1)
    FROM finished_queues l WHERE l.queue IS NOT NULL
), active AS MATERIALIZED (
    SELECT j.queue FROM {schema}.jobs j WHERE j.state = {ACTIVE} LIMIT $1::integer + 1
), queues AS MATERIALIZED (
    SELECT queue FROM live_queues WHERE queue IS NOT NULL
    UNION SELECT queue FROM finished_queues WHERE queue IS NOT NULL
    UNION SELECT queue FROM active
), counts AS MATERIALIZED (
    SELECT q.queue,
           (SELECT count(*) FROM (SELECT FROM {schema}.jobs j
                                  WHERE j.queue = q.queue AND j.state = {SCHEDULED} AND j.run_at > now()
                                  LIMIT $1::integer + 1) x) AS scheduled,
           (SELECT count(*) FROM (SELECT FROM {schema}.jobs j
                                  WHERE j.queue = q.queue AND j.state = {QUEUED} LIMIT $1::integer + 1) x) AS queued,
           (SELECT count(*) FROM (SELECT FROM {schema}.jobs j
                                  WHERE j.queue = q.queue AND j.state IN ({SCHEDULED}, {RETRY_PENDING})
                                    AND j.run_at <= now()
                                  LIMIT $1::integer + 1) x) AS due,
           (SELECT count(*) FROM active a WHERE a.queue = q.queue) AS active,
           (SELECT count(*) FROM (SELECT FROM {schema}.jobs j
                                  WHERE j.queue = q.queue AND j.state = {RETRY_PENDING} AND j.run_at > now()
                                  LIMIT $1::integer + 1) x) AS retry_pending,
           (SELECT count(*) FROM (SELECT FROM {schema}.jobs j
                                  WHERE j.queue = q.queue AND j.state = {WAITING} LIMIT $1::integer + 1) x) AS waiting
    FROM queues q
), finished_counts AS MATERIALIZED (
    -- One count per queue and finished state: each is a plain state = s.state in
    -- finished_jobs (unlike the live buckets above, which also look at run_at).
    SELECT q.queue, s.state,
           (SELECT count(*) FROM (SELECT FROM {schema}.finished_jobs f
                                  WHERE f.queue = q.queue AND f.state = s.state LIMIT $1::integer + 1) x) AS jobs
    FROM queues q CROSS JOIN (VALUES ({SUCCEEDED}), ({DEAD}), ({CANCELLED})) AS s(state)
), exact AS MATERIALIZED (
    -- capped: the count stopped at $1 + 1 (active: more than $1 jobs run, and
    -- those read were $1 + 1 of them).
    SELECT c.queue, v.state, v.live, v.jobs, v.capped
    FROM counts c CROSS JOIN LATERAL (VALUES
        ({SCHEDULED}, true, c.scheduled, c.scheduled > $1::integer),
        ({QUEUED}, true, c.queued + c.due, c.queued > $1::integer OR c.due > $1::integer),
        ({ACTIVE}, true, c.active, (SELECT count(*) FROM active) > $1::integer),
        ({RETRY_PENDING}, true, c.retry_pending, c.retry_pending > $1::integer),
        ({WAITING}, true, c.waiting, c.waiting > $1::integer)) AS v(state, live, jobs, capped)
    UNION ALL
    SELECT f.queue, f.state, false, f.jobs, f.jobs > $1::integer FROM finished_counts f
), jobs_pages AS (
    SELECT pg_relation_size('{schema}.jobs') / current_setting('block_size')::bigint AS pages
    WHERE EXISTS (SELECT FROM exact e WHERE e.capped AND e.live)
), finished_pages AS (
    SELECT pg_relation_size('{schema}.finished_jobs') / current_setting('block_size')::bigint AS pages
    WHERE EXISTS (SELECT FROM exact e WHERE e.capped AND NOT e.live)
), sample AS MATERIALIZED (
    SELECT s.queue, s.state, count(*)::float8 * min(p.pages) / least($2::bigint, min(p.pages)) AS estimate
    FROM jobs_pages p
    CROSS JOIN generate_series(0, least($2::bigint, p.pages) - 1) AS i
    CROSS JOIN LATERAL (
        SELECT j.queue, {LIVE_STATE}::integer AS state
        FROM {schema}.jobs j
        WHERE j.ctid >= format('(%s,0)', (2 * i + 1) * p.pages / (2 * least($2::bigint, p.pages)))::tid
          AND j.ctid < format('(%s,0)', (2 * i + 1) * p.pages / (2 * least($2::bigint, p.pages)) + 1)::tid
        OFFSET 0) AS s  -- OFFSET 0: planned apart, so that i is a parameter of its TID range scan
    GROUP BY s.queue, s.state
    UNION ALL
    SELECT s.queue, s.state, count(*)::float8 * min(p.pages) / least($2::bigint, min(p.pages))
    FROM finished_pages p
    CROSS JOIN generate_series(0, least($2::bigint, p.pages) - 1) AS i
    CROSS JOIN LATERAL (
        SELECT f.queue, f.state::integer AS state
        FROM {schema}.finished_jobs f
        WHERE f.ctid >= format('(%s,0)', (2 * i + 1) * p.pages / (2 * least($2::bigint, p.pages)))::tid
          AND f.ctid < format('(%s,0)', (2 * i + 1) * p.pages / (2 * least($2::bigint, p.pages)) + 1)::tid
        OFFSET 0) AS s
    GROUP BY s.queue, s.state
)
SELECT e.queue, e.state, e.jobs, e.capped,
       CASE WHEN e.capped THEN (SELECT s.estimate FROM sample s WHERE s.queue = e.queue AND s.state = e.state) END
       AS estimate
FROM exact e
UNION ALL
-- More than $1 jobs active: a queue with active jobs only, none of them read.
SELECT s.queue, s.state, 0, true, s.estimate FROM sample s
WHERE s.state = {ACTIVE} AND NOT EXISTS (SELECT FROM queues q WHERE q.queue = s.queue)

-- name: delete_expired
-- One batch of finished jobs past their retention. A succeeded job whose
-- unique key is still held (unique_ttl longer than result_ttl) stays until its
-- window closes: its row is what holds the key.
WITH doomed AS (
    DELETE FROM {schema}.finished_jobs f
    WHERE f.id = ANY (ARRAY(
        SELECT e.id FROM {schema}.finished_jobs e
        WHERE e.state = ANY ($1::smallint[]) AND e.finished_at <= now() - $2::float8 * interval '1 second'
          AND (e.unique_until IS NULL OR e.unique_until <= now())
        LIMIT $3::integer
        FOR UPDATE SKIP LOCKED))
    RETURNING 1
)
SELECT count(*) FROM doomed

-- name: table_health
-- Dead and live tuples of one of this schema's tables, $1 'jobs' or
-- 'finished_jobs' (the statistics collector's estimates).
SELECT coalesce(n_dead_tup, 0) AS dead, coalesce(n_live_tup, 0) AS live
FROM pg_stat_user_tables WHERE relid = to_regclass('{schema}.' || quote_ident($1::text))

-- name: pause
INSERT INTO {schema}.paused_queues (queue) VALUES ($1::text) ON CONFLICT (queue) DO NOTHING

-- name: resume
-- Idle workers of the queue skipped its jobs while it was paused: wake them.
WITH resumed AS (
    DELETE FROM {schema}.paused_queues p WHERE p.queue = $1::text RETURNING p.queue
)
SELECT pg_notify({channel}, resumed.queue) FROM resumed

-- name: set_progress
-- Only the current lease's worker may report: (state + 0) = {ACTIVE} for a
-- primary-key look-up, as in ack. The column is not indexed, so the update
-- can stay on the row's page (HOT) and leaves the indexes alone.
-- $4: publish a progress event.
WITH reported AS (
    UPDATE {schema}.jobs j SET progress = $3::bytea
    WHERE j.id = $1::text AND j.token = $2::bigint AND (j.state + 0) = {ACTIVE}
    RETURNING j.id, j.task, j.queue
)
SELECT (SELECT count(*) FROM reported) AS reported,
       (SELECT {schema}.publish(2::smallint, array_agg(r.id), array_agg(r.task), array_agg(r.queue))
        FROM reported r WHERE $4::boolean) AS published

-- name: paused
SELECT queue FROM {schema}.paused_queues ORDER BY queue

-- name: shift_due
-- Every scheduled and retry-pending job's run_at $1 seconds earlier, for
-- fastjobs.testing.advance_time (now() cannot move, so the jobs do); the queues
-- that had any are woken. Returns how many jobs moved.
WITH shifted AS (
    UPDATE {schema}.jobs SET run_at = run_at - make_interval(secs => $1::float8)
    WHERE state IN ({SCHEDULED}, {RETRY_PENDING})
    RETURNING queue
), woken AS (
    SELECT pg_notify({channel}, q) FROM (SELECT DISTINCT queue AS q FROM shifted) AS d
)
SELECT (SELECT count(*) FROM shifted)::integer AS moved, (SELECT count(*) FROM woken) AS notified
