-- fastjobs SQL snippets: text that several queries (queries.sql) or functions
-- (functions/*.sql) share, written once here. Each starts at a
-- "-- name: <NAME>" line; {NAME} in a query or function file stands for it
-- (fastjobs.backends.postgres.sql pastes it in at import, before the functions
-- are hashed or anything is prepared, so it costs nothing at run time). A
-- snippet's later lines are indented to the column its placeholder stands at;
-- it may hold state placeholders and the snippets above it. Placeholders in
-- the comments of a function file are filled in too: name a snippet there
-- without its braces. Migrations take none: their text must not change once
-- released. A change here changes the
-- functions' text: bump FUNCTIONS_REVISION as for an edit of functions/.

-- name: PLANNING_PINS
-- How every function's statements may be planned: see claim.sql for why.
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off

-- name: FINISHED_CARRIED
-- The columns a job carries unchanged from jobs into finished_jobs: both the
-- INSERT's column list and, unqualified, the values read from the rows the
-- statement deleted (RETURNING j.*), followed by the columns set on the way.
id, queue, priority, attempt, max_attempts, token, enqueued_at, run_at, started_at,
unique_key, unique_ttl, body, progress,
parents, dep_mode, pending_parents, failed_parents, limit_key, task, tags

-- name: INSERT_FINISHED
-- The head of every INSERT of jobs into finished_jobs: the carried columns,
-- then those set on the way, whose values follow the placeholder in this
-- order: state, finished_at, unique_until, result, errors; then FROM the
-- deleted rows.
INSERT INTO {schema}.finished_jobs
    ({FINISHED_CARRIED},
     state, finished_at, unique_until, result, errors)
SELECT {FINISHED_CARRIED},

-- name: KEEP_CANCELLED
-- A cancelled job's row in finished_jobs (cancel_jobs, and resolve_waiting for
-- the dependants it cancels), from the rows a CTE cancelled deleted.
{INSERT_FINISHED}
       {CANCELLED}, now(), NULL, NULL, errors
FROM cancelled

-- name: JOB_TAGS
-- An enqueue's tags for the job of its row n: n.tags, the job's tags joined by
-- U+001F (see enqueue), split; NULL without tags.
string_to_array(n.tags, U&'\001F')

-- name: UNIQUE_HOLDERS
-- What enqueue_unique and enqueue_flow return: for every job of the batch with
-- a unique key (their p_queues, p_unique_keys), its position and the id of the
-- job that holds its key now (live, or succeeded within its unique_ttl).
SELECT n.ord::integer, coalesce(h.id, j.id)
FROM unnest(p_queues, p_unique_keys) WITH ORDINALITY AS n(queue, unique_key, ord)
LEFT JOIN {schema}.jobs j ON j.queue = n.queue AND j.unique_key = n.unique_key
LEFT JOIN LATERAL (
    SELECT f.id FROM {schema}.finished_jobs f
    WHERE f.queue = n.queue AND f.unique_key = n.unique_key AND f.unique_until > now()
    ORDER BY f.unique_until DESC
    LIMIT 1) AS h ON true
WHERE n.unique_key IS NOT NULL

-- name: COLLECT_CLAIMED
-- claim (both ways it claims from one queue): the rows of its CTE claimed
-- into its v_ arrays, in claim order (tasks for the started events). One sort
-- feeds the five aggregates: PostgreSQL 15 sorts once per aggregate written
-- with its own ORDER BY, and those five sorts were ~10% of a claim. A plain
-- aggregate over a sorted subquery takes its rows in that order (the
-- PostgreSQL manual's own way to order an aggregate's input).
SELECT array_agg(c.id), array_agg(c.token), array_agg(c.attempt), array_agg(c.body), array_agg(c.task), count(*)
INTO v_ids, v_tokens, v_attempts, v_bodies, v_tasks, v_got
FROM (SELECT * FROM claimed ORDER BY claimed.priority DESC, claimed.seq) AS c;

-- name: LIVE_STATE
-- The state a live job is reported in: a delayed job whose time has come is
-- queued (promote_due may not have moved it yet).
(CASE WHEN state IN ({SCHEDULED}, {RETRY_PENDING}) AND run_at <= now() THEN {QUEUED} ELSE state END)

-- name: LIVE_JOB_FIELDS
-- A row of jobs as StoredJob's fields (get, list_live).
id, queue,
{LIVE_STATE}::integer AS state,
priority, attempt, max_attempts, token, body, NULL::bytea AS result, errors,
date_part('epoch', enqueued_at) AS enqueued_at, date_part('epoch', run_at) AS run_at,
date_part('epoch', started_at) AS started_at, NULL::float8 AS finished_at,
date_part('epoch', lease_until) AS lease_until, unique_key, progress, parents,
coalesce(pending_parents, 0) AS pending_parents, coalesce(failed_parents, 0) AS failed_parents, limit_key,
task, tags

-- name: FINISHED_JOB_FIELDS
-- A row of finished_jobs as StoredJob's fields (get, list_finished).
id, queue, state::integer AS state, priority, attempt, max_attempts, token, body, result, errors,
date_part('epoch', enqueued_at) AS enqueued_at, date_part('epoch', run_at) AS run_at,
date_part('epoch', started_at) AS started_at, date_part('epoch', finished_at) AS finished_at,
NULL::float8 AS lease_until, unique_key, progress, parents,
coalesce(pending_parents, 0) AS pending_parents, coalesce(failed_parents, 0) AS failed_parents, limit_key,
task, tags
