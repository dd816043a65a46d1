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
SELECT {schema}.enqueue($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::integer[], $6::bytea[])

-- name: enqueue_unique
SELECT job_position, holder_id
FROM {schema}.enqueue_unique($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::integer[], $6::bytea[], $7::text[],
                             $8::float8[])

-- name: enqueue_flow
SELECT job_position, holder_id
FROM {schema}.enqueue_flow($1::text[], $2::text[], $3::bigint[], $4::float8[], $5::integer[], $6::bytea[], $7::text[],
                           $8::float8[], $9::smallint[], $10::integer[], $11::text[], $12::integer[], $13::integer[],
                           $14::float8[], $15::text[], $16::text[])

-- name: claim
SELECT claimed_ids, claimed_tokens, claimed_attempts, claimed_bodies
FROM {schema}.claim($1::text[], $2::integer, $3::float8, $4::bytea, $5::bytea, $6::bytea)

-- name: ack
SELECT {schema}.ack($1::text[], $2::bigint[], $3::smallint[], $4::bytea[], $5::float8[], $6::boolean)

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
SELECT {schema}.recover_expired($1::bytea, $2::bytea, $3::bytea, $4::integer)

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

-- name: list_finished
SELECT {FINISHED_JOB_FIELDS}
FROM {schema}.finished_jobs f
WHERE state = $1::smallint AND ($2::text IS NULL OR queue = $2::text)
ORDER BY f.finished_at, f.id
LIMIT $3::bigint OFFSET $4::bigint

-- name: retry_dead
-- Back to its queue with a fresh set of attempts; fails with unique_violation
-- (reported as False) if a live job of its queue holds its unique key, and
-- changes nothing if a job that succeeded holds it still (unique_ttl). Its
-- dependants were settled when it died (cancelled, or released under
-- FINISHED / FAILED): reviving it changes none of them.
WITH revived AS (
    DELETE FROM {schema}.finished_jobs f
    WHERE f.id = $1::text AND f.state = {DEAD}
      AND (f.unique_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM {schema}.finished_jobs h
          WHERE h.queue = f.queue AND h.unique_key = f.unique_key AND h.unique_until > now()))
    RETURNING f.*
), requeued AS (
    INSERT INTO {schema}.jobs
        (id, queue, state, priority, seq, attempt, max_attempts, token, enqueued_at, run_at,
         started_at, unique_key, unique_ttl, body, errors, progress,
         parents, dep_mode, pending_parents, failed_parents, limit_key)
    SELECT r.id, r.queue, {QUEUED}, r.priority, nextval('{schema}.job_seq'), 0, r.max_attempts, r.token,
           r.enqueued_at, now(), r.started_at, r.unique_key, r.unique_ttl, r.body, r.errors, r.progress,
           r.parents, r.dep_mode, r.pending_parents, r.failed_parents, r.limit_key
    FROM revived r
    RETURNING queue
)
SELECT pg_notify({channel}, requeued.queue) FROM requeued

-- name: unique_held_elsewhere
-- Run by retry_dead after its INSERT, in the same transaction but a fresh
-- snapshot: a job that succeeded while the revive waited on its row, and holds
-- the revived job's key for its unique_ttl, wins; the caller rolls back.
SELECT EXISTS (
    SELECT 1 FROM {schema}.jobs j
    JOIN {schema}.finished_jobs h ON h.queue = j.queue AND h.unique_key = j.unique_key
    WHERE j.id = $1::text AND h.id <> j.id AND h.unique_until > now()
)

-- name: cancel
-- A function: the cancelled job's dependants are settled in a statement after
-- the one that cancels it (see settle_dependants).
SELECT {schema}.cancel_job($1::text)

-- name: purge
WITH purged AS (
    DELETE FROM {schema}.finished_jobs f
    WHERE f.state = $1::smallint AND ($2::text IS NULL OR f.queue = $2::text)
    RETURNING 1
)
SELECT count(*) FROM purged

-- name: stats
SELECT queue, {LIVE_STATE}::integer AS state,
       count(*) AS jobs
FROM {schema}.jobs GROUP BY 1, 2
UNION ALL
SELECT queue, state::integer, count(*) FROM {schema}.finished_jobs GROUP BY 1, 2

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
WITH reported AS (
    UPDATE {schema}.jobs j SET progress = $3::bytea
    WHERE j.id = $1::text AND j.token = $2::bigint AND (j.state + 0) = {ACTIVE}
    RETURNING 1
)
SELECT count(*) FROM reported

-- name: paused
SELECT queue FROM {schema}.paused_queues ORDER BY queue
