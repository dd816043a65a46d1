-- fastjobs PostgreSQL functions: ack and renew, the per-batch calls of every
-- worker. Placeholders, planning pins and re-application: see claim.sql.
--
-- Apply a batch of acks (kinds: 0 succeed, 1 retry, 2 dead, 3 release), each
-- only if the job is active with the same token. Returns the 1-based positions
-- of the acks that applied. Callers pass each (job id, token) pair at most once
-- (one id may come with several tokens: only the current one matches), and may pass
-- NULL for p_kinds (all succeed), p_payloads (none) and p_delays (all 0): the
-- common batch then costs the client two arrays to encode instead of five.
-- Finished jobs (succeeded, dead) settle their dependants, and a limited job
-- leaving active wakes its queue. The dependency and limit columns follow the
-- job to finished_jobs.
--
-- The state test is written (j.state + 0) = {ACTIVE} so that it cannot match
-- the partial index jobs_lease: the batch must be joined by primary-key
-- look-ups. Statistics gathered while no job was active make the planner
-- believe jobs_lease empty; it then drove a nested loop from that index and
-- re-scanned the whole batch for every active job (an ack or renewal of 100
-- took 250 ms with 20,000 active jobs instead of 1 ms).
--
-- The common batch, every ack a success and each job id once, is one DELETE
-- of the batch's rows by primary key (id = ANY (p_ids): a single-table scan
-- whose only index path is jobs_pkey, so no statistics can turn it into a
-- walk of the table), each row's token checked against its own through a
-- jsonb map of id -> position. No lock before it: a renewal committed after
-- the DELETE's snapshot (a new row version) makes the DELETE wait, follow the
-- row to its latest version and re-check id, token and state on it
-- (EvalPlanQual), so the ack still lands on a renewed row, while a recovery
-- (state queued) or a new lease (another token) makes it miss, as it must.
-- That saves the lookup statement and a WAL-logged row lock per job.
--
-- Other batches first find their rows by primary key inside a LATERAL
-- subquery (FOR UPDATE), then change them by ctid (a TID scan per row):
-- nothing else can drive those joins. Written as a plain join of the batch
-- to jobs, the planner could walk the whole table
-- for each batch row instead; it did, once autovacuum analyzed the table
-- while it was empty but still had pages (density 0: it then believes jobs
-- holds one row, whatever its size): 9 to 46 s per ack of 1,000 in the
-- benchmark. The lock makes a concurrent renewal (a new row version) wait
-- and be re-checked, not make the ack miss its row.
--
-- p_events: publish the batch's succeeded, failed, dead and released events in
-- one NOTIFY (events.sql). p_h_*: the flush's history rows, added in this same
-- statement (record_history; NULL p_h_queues: none).
CREATE OR REPLACE FUNCTION {schema}.ack(
    p_ids text[], p_tokens bigint[], p_kinds smallint[], p_payloads bytea[],
    p_delays double precision[], p_keep_results boolean, p_events boolean,
    p_h_queues text[], p_h_tasks text[], p_h_outcomes smallint[], p_h_runs bigint[],
    p_h_sums double precision[], p_h_buckets bigint[], p_h_minutes double precision, p_h_hours double precision
) RETURNS integer[] LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_now     timestamptz := now();
    v_applied integer[] := '{}';
    v_part    integer[];
    v_queues  text[];
    v_ids     text[];
    v_limited text[];
    v_done    text[] := '{}';
    v_failed  boolean[] := '{}';
    v_wake    text[] := '{}';
    v_tids    tid[];
    v_tasks   text[];
    v_part_queues text[];
    v_ev_kinds  smallint[] := '{}';
    v_ev_ids    text[] := '{}';
    v_ev_tasks  text[] := '{}';
    v_ev_queues text[] := '{}';
    v_pos     jsonb;
BEGIN
    IF p_kinds IS NULL OR NOT (p_kinds && '{1,2,3}'::smallint[]) THEN
        -- All successes: the one-statement path, if no id comes twice (the map keeps one position per id).
        SELECT jsonb_object_agg(a.id, a.ord) INTO v_pos FROM unnest(p_ids) WITH ORDINALITY AS a(id, ord);
        IF (SELECT count(*) FROM jsonb_object_keys(v_pos)) <> cardinality(p_ids) THEN
            v_pos := NULL;
        END IF;
    END IF;
    IF p_kinds IS NULL THEN
        p_kinds := array_fill(0::smallint, ARRAY[cardinality(p_ids)]);
    END IF;
    IF p_payloads IS NULL THEN
        p_payloads := array_fill(NULL::bytea, ARRAY[cardinality(p_ids)]);
    END IF;
    IF p_delays IS NULL THEN
        p_delays := array_fill(0::double precision, ARRAY[cardinality(p_ids)]);
    END IF;
    IF v_pos IS NULL THEN
        -- Each ack's row, found by primary key and locked (NULL: not active with
        -- that token); the statements below change rows by these ctids.
        SELECT array_agg(t.tid ORDER BY a.ord) INTO v_tids
        FROM unnest(p_ids, p_tokens) WITH ORDINALITY AS a(id, token, ord)
        LEFT JOIN LATERAL (
            SELECT j.ctid AS tid FROM {schema}.jobs j
            WHERE j.id = a.id AND j.token = a.token AND (j.state + 0) = {ACTIVE}
            FOR UPDATE
        ) t ON true;
    END IF;
    IF 0 = ANY (p_kinds) THEN
        IF v_pos IS NOT NULL THEN
            -- Results not kept: only a job whose unique key is held after
            -- success keeps a row (without its result), to hold it from.
            WITH done AS (
                DELETE FROM {schema}.jobs j
                WHERE j.id = ANY (p_ids) AND (j.state + 0) = {ACTIVE}
                  AND j.token = p_tokens[(v_pos ->> j.id)::integer]
                RETURNING j.*, (v_pos ->> j.id)::integer AS ord
            ), kept AS (
                {INSERT_FINISHED}
                       {SUCCEEDED}, v_now,
                       CASE WHEN unique_ttl > 0 AND unique_key IS NOT NULL
                            THEN v_now + unique_ttl * interval '1 second' END,
                       CASE WHEN p_keep_results THEN p_payloads[ord] END, errors
                FROM done
                WHERE p_keep_results OR (unique_ttl > 0 AND unique_key IS NOT NULL)
            )
            SELECT array_agg(done.ord), array_agg(done.id), array_agg(DISTINCT done.queue) FILTER (WHERE done.limit_key IS NOT NULL),
                   array_agg(done.task), array_agg(done.queue)
            INTO v_part, v_ids, v_limited, v_tasks, v_part_queues FROM done;
        ELSIF p_keep_results THEN
            WITH a AS (
                SELECT * FROM unnest(p_ids, p_tokens, v_tids, p_kinds, p_payloads) WITH ORDINALITY
                    AS a(id, token, tid, kind, payload, ord)
                WHERE a.kind = 0 AND a.tid IS NOT NULL
            ), done AS (
                DELETE FROM {schema}.jobs j
                USING a
                WHERE j.ctid = a.tid
                RETURNING j.*, a.payload, a.ord
            ), kept AS (
                {INSERT_FINISHED}
                       {SUCCEEDED}, v_now,
                       CASE WHEN unique_ttl > 0 AND unique_key IS NOT NULL
                            THEN v_now + unique_ttl * interval '1 second' END,
                       payload, errors
                FROM done
            )
            SELECT array_agg(done.ord::integer), array_agg(done.id), array_agg(DISTINCT done.queue) FILTER (WHERE done.limit_key IS NOT NULL),
                   array_agg(done.task), array_agg(done.queue)
            INTO v_part, v_ids, v_limited, v_tasks, v_part_queues FROM done;
        ELSE
            -- Results are not kept, but a job whose unique key is held after
            -- success keeps a row (without its result) to hold it from, until
            -- its window closes and cleanup takes it.
            WITH a AS (
                SELECT * FROM unnest(p_ids, p_tokens, v_tids, p_kinds) WITH ORDINALITY AS a(id, token, tid, kind, ord)
                WHERE a.kind = 0 AND a.tid IS NOT NULL
            ), done AS (
                DELETE FROM {schema}.jobs j
                USING a
                WHERE j.ctid = a.tid
                RETURNING j.*, a.ord
            ), held AS (
                {INSERT_FINISHED}
                       {SUCCEEDED}, v_now, v_now + unique_ttl * interval '1 second', NULL, errors
                FROM done
                WHERE unique_ttl > 0 AND unique_key IS NOT NULL
            )
            SELECT array_agg(done.ord::integer), array_agg(done.id), array_agg(DISTINCT done.queue) FILTER (WHERE done.limit_key IS NOT NULL),
                   array_agg(done.task), array_agg(done.queue)
            INTO v_part, v_ids, v_limited, v_tasks, v_part_queues FROM done;
        END IF;
        v_applied := v_applied || coalesce(v_part, '{}');
        v_done := coalesce(v_ids, '{}');
        v_failed := array_fill(false, ARRAY[cardinality(v_done)]);
        v_wake := coalesce(v_limited, '{}');
        IF p_events AND v_ids IS NOT NULL THEN
            v_ev_kinds := array_fill(3::smallint, ARRAY[cardinality(v_ids)]);
            v_ev_ids := v_ids;
            v_ev_tasks := v_tasks;
            v_ev_queues := v_part_queues;
        END IF;
    END IF;

    IF 1 = ANY (p_kinds) THEN
        -- A retry goes to the end of the FIFO (a new seq), like a fresh push.
        WITH a AS (
            SELECT * FROM unnest(p_ids, p_tokens, v_tids, p_kinds, p_payloads, p_delays) WITH ORDINALITY
                AS a(id, token, tid, kind, payload, delay, ord)
            WHERE a.kind = 1 AND a.tid IS NOT NULL
        ), retried AS (
            UPDATE {schema}.jobs j
            SET state = CASE WHEN a.delay > 0 THEN {RETRY_PENDING} ELSE {QUEUED} END,
                run_at = CASE WHEN a.delay > 0 THEN v_now + a.delay * interval '1 second' ELSE v_now END,
                errors = CASE WHEN a.payload IS NULL THEN j.errors ELSE array_append(j.errors, a.payload) END,
                lease_until = NULL,
                seq = nextval('{schema}.job_seq')
            FROM a
            WHERE j.ctid = a.tid
            RETURNING a.ord, j.queue, j.id, j.task
        )
        SELECT array_agg(retried.ord::integer), array_agg(DISTINCT retried.queue),
               array_agg(retried.id), array_agg(retried.task), array_agg(retried.queue)
        INTO v_part, v_queues, v_ids, v_tasks, v_part_queues FROM retried;
        v_applied := v_applied || coalesce(v_part, '{}');
        IF p_events AND v_ids IS NOT NULL THEN
            v_ev_kinds := v_ev_kinds || array_fill(4::smallint, ARRAY[cardinality(v_ids)]);
            v_ev_ids := v_ev_ids || v_ids;
            v_ev_tasks := v_ev_tasks || v_tasks;
            v_ev_queues := v_ev_queues || v_part_queues;
        END IF;
    END IF;

    IF 2 = ANY (p_kinds) THEN
        WITH a AS (
            SELECT * FROM unnest(p_ids, p_tokens, v_tids, p_kinds, p_payloads) WITH ORDINALITY
                AS a(id, token, tid, kind, payload, ord)
            WHERE a.kind = 2 AND a.tid IS NOT NULL
        ), done AS (
            DELETE FROM {schema}.jobs j
            USING a
            WHERE j.ctid = a.tid
            RETURNING j.*, a.payload, a.ord
        ), buried AS (
            {INSERT_FINISHED}
                   {DEAD}, v_now, NULL, NULL,
                   CASE WHEN payload IS NULL THEN errors ELSE array_append(errors, payload) END
            FROM done
        )
        SELECT array_agg(done.ord::integer), array_agg(done.id), array_agg(DISTINCT done.queue) FILTER (WHERE done.limit_key IS NOT NULL),
               array_agg(done.task), array_agg(done.queue)
            INTO v_part, v_ids, v_limited, v_tasks, v_part_queues FROM done;
        v_applied := v_applied || coalesce(v_part, '{}');
        IF p_events AND v_ids IS NOT NULL THEN
            v_ev_kinds := v_ev_kinds || array_fill(5::smallint, ARRAY[cardinality(v_ids)]);
            v_ev_ids := v_ev_ids || v_ids;
            v_ev_tasks := v_ev_tasks || v_tasks;
            v_ev_queues := v_ev_queues || v_part_queues;
        END IF;
        v_done := v_done || coalesce(v_ids, '{}');
        v_failed := v_failed || array_fill(true, ARRAY[cardinality(coalesce(v_ids, '{}'))]);
        v_wake := v_wake || coalesce(v_limited, '{}');
    END IF;

    IF 3 = ANY (p_kinds) THEN
        -- Never started: back to the queue without using the attempt.
        WITH a AS (
            SELECT * FROM unnest(p_ids, p_tokens, v_tids, p_kinds) WITH ORDINALITY AS a(id, token, tid, kind, ord)
            WHERE a.kind = 3 AND a.tid IS NOT NULL
        ), released AS (
            UPDATE {schema}.jobs j
            SET state = {QUEUED}, attempt = j.attempt - 1, lease_until = NULL,
                seq = nextval('{schema}.job_seq')
            FROM a
            WHERE j.ctid = a.tid
            RETURNING a.ord, j.queue, j.id, j.task
        )
        SELECT array_agg(released.ord::integer), coalesce(v_queues, '{}') || array_agg(DISTINCT released.queue),
               array_agg(released.id), array_agg(released.task), array_agg(released.queue)
        INTO v_part, v_queues, v_ids, v_tasks, v_part_queues FROM released;
        v_applied := v_applied || coalesce(v_part, '{}');
        IF p_events AND v_ids IS NOT NULL THEN
            v_ev_kinds := v_ev_kinds || array_fill(6::smallint, ARRAY[cardinality(v_ids)]);
            v_ev_ids := v_ev_ids || v_ids;
            v_ev_tasks := v_ev_tasks || v_tasks;
            v_ev_queues := v_ev_queues || v_part_queues;
        END IF;
    END IF;

    -- A limited job that left active frees a slot of its key: wake its queue.
    v_queues := coalesce(v_queues, '{}') || v_wake;
    IF cardinality(v_queues) > 0 THEN
        PERFORM pg_notify({channel}, q) FROM (SELECT DISTINCT unnest(v_queues) AS q) AS woken WHERE q IS NOT NULL;
    END IF;
    -- publish's own first test, made here (see claim).
    IF cardinality(v_ev_ids) > 0 AND EXISTS (SELECT 1 FROM {schema}.event_listeners) THEN
        PERFORM {schema}.publish(v_ev_kinds, v_ev_ids, v_ev_tasks, v_ev_queues);
    END IF;
    -- A statement after the DELETEs above: see settle.
    IF cardinality(v_done) > 0 AND EXISTS (SELECT 1 FROM {schema}.job_deps) THEN
        PERFORM {schema}.settle(v_done, v_failed, p_events);
    END IF;
    IF p_h_queues IS NOT NULL THEN
        PERFORM {schema}.record_history(p_h_queues, p_h_tasks, p_h_outcomes, p_h_runs, p_h_sums, p_h_buckets,
                                        p_h_minutes, p_h_hours);
    END IF;
    RETURN v_applied;
END
$$;

-- Add one ack flush's history rows (queue, task, outcome, runs, runtime_sum and
-- a bucket counts per row, p_buckets holding each row's counts in turn) to the
-- current minute and the current hour of the server's clock: an upsert per
-- point, into this session's shard of it (see migration 003). The caller merges rows of one (queue, task, outcome) first (an upsert
-- may not touch a row twice), and the rows go in key order, so two flushes
-- lock shared points in the same order. A flush that creates a point (the
-- first of a minute) deletes at most 100 expired points of each step: the
-- table stays bounded (points created <= points deleted once it is full)
-- without a sweeper, and no flush pays more than that.
CREATE OR REPLACE FUNCTION {schema}.record_history(
    p_queues text[], p_tasks text[], p_outcomes smallint[], p_runs bigint[], p_sums double precision[],
    p_buckets bigint[], p_keep_minutes double precision, p_keep_hours double precision
) RETURNS void LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_width   integer := cardinality(p_buckets) / greatest(cardinality(p_queues), 1);
    v_epoch   double precision := floor(date_part('epoch', now()));
    v_created boolean;
    v_shard   smallint := pg_backend_pid() % 8;
BEGIN
    WITH added AS (
        INSERT INTO {schema}.history AS h (step, at, queue, task, outcome, shard, runs, runtime_sum, buckets)
        SELECT s.step, to_timestamp(v_epoch - v_epoch::bigint % s.step), r.queue, r.task, r.outcome, v_shard, r.runs,
               r.runtime_sum,
               p_buckets[((r.ord - 1) * v_width + 1)::integer:(r.ord * v_width)::integer]
        FROM unnest(p_queues, p_tasks, p_outcomes, p_runs, p_sums) WITH ORDINALITY
                AS r(queue, task, outcome, runs, runtime_sum, ord)
        CROSS JOIN (VALUES (60), (3600)) AS s(step)
        ORDER BY s.step, r.queue, r.task, r.outcome
        ON CONFLICT (step, at, queue, task, outcome, shard) DO UPDATE
        SET runs = h.runs + EXCLUDED.runs, runtime_sum = h.runtime_sum + EXCLUDED.runtime_sum,
            buckets = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0)
                            FROM unnest(h.buckets, EXCLUDED.buckets) WITH ORDINALITY AS u(a, b, ord) ORDER BY u.ord)
        RETURNING (h.xmax = 0) AS created
    )
    SELECT bool_or(added.created) INTO v_created FROM added;
    IF v_created THEN
        DELETE FROM {schema}.history h
        WHERE h.ctid = ANY (ARRAY(
            SELECT o.ctid FROM {schema}.history o
            WHERE o.step = 60 AND o.at < now() - p_keep_minutes * interval '1 second'
            ORDER BY o.at LIMIT 100));
        DELETE FROM {schema}.history h
        WHERE h.ctid = ANY (ARRAY(
            SELECT o.ctid FROM {schema}.history o
            WHERE o.step = 3600 AND o.at < now() - p_keep_hours * interval '1 second'
            ORDER BY o.at LIMIT 100));
    END IF;
END
$$;

-- Extend leases that are still held: (job id, token, seconds from now).
-- Returns the 1-based positions of the leases that were extended. Callers pass
-- each (job id, token) pair at most once. As in ack above: the batch's rows found by primary key and locked in a
-- LATERAL subquery, then updated by ctid, so no statistics can make the
-- planner walk the whole table once per renewal.
--
-- p_worker: the renewing worker's beat, in the same statement (no round trip
-- of its own): its last_seen becomes now(), its running jobs and ttl the
-- given ones. NULL: no beat. A worker without a row (never registered,
-- deregistered, forgotten) is left alone. An overload, not a DEFAULT on the
-- older three-argument renew: both would match a three-argument call, which
-- PostgreSQL refuses as ambiguous; the older one stays for older processes.
CREATE OR REPLACE FUNCTION {schema}.renew(p_ids text[], p_tokens bigint[], p_seconds double precision[],
                                          p_worker text, p_running text[], p_ttl double precision)
RETURNS integer[] LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_renewed integer[];
BEGIN
    IF p_worker IS NOT NULL THEN
        UPDATE {schema}.workers
        SET last_seen = now(), running = p_running, ttl = p_ttl
        WHERE id = p_worker;
    END IF;
    IF cardinality(p_ids) = 0 THEN
        RETURN NULL;
    END IF;
    WITH l AS (
        SELECT * FROM unnest(p_ids, p_tokens, p_seconds) WITH ORDINALITY AS l(id, token, seconds, ord)
    ), h AS (
        SELECT l.*, t.tid FROM l CROSS JOIN LATERAL (
            SELECT j.ctid AS tid FROM {schema}.jobs j
            WHERE j.id = l.id AND j.token = l.token AND (j.state + 0) = {ACTIVE}
            FOR UPDATE
        ) t
    ), renewed AS (
        UPDATE {schema}.jobs j
        SET lease_until = now() + h.seconds * interval '1 second'
        FROM h
        WHERE j.ctid = h.tid
        RETURNING h.ord
    )
    SELECT array_agg(renewed.ord::integer) INTO v_renewed FROM renewed;
    RETURN v_renewed;
END
$$;

-- The renewal of fastjobs before the worker registry (functions revision 2):
-- leases only.
CREATE OR REPLACE FUNCTION {schema}.renew(p_ids text[], p_tokens bigint[], p_seconds double precision[])
RETURNS integer[] LANGUAGE sql AS $$
    SELECT {schema}.renew(p_ids, p_tokens, p_seconds, NULL, NULL, NULL)
$$;

-- The ack of fastjobs before the operations layer (functions revision 3): no
-- events, no history; for processes of that version during a rolling upgrade.
CREATE OR REPLACE FUNCTION {schema}.ack(
    p_ids text[], p_tokens bigint[], p_kinds smallint[], p_payloads bytea[],
    p_delays double precision[], p_keep_results boolean
) RETURNS integer[] LANGUAGE sql AS $$
    SELECT {schema}.ack(p_ids, p_tokens, p_kinds, p_payloads, p_delays, p_keep_results, false,
                        NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)
$$;
