-- fastjobs PostgreSQL schema, version 2: the operations that take more than
-- one SQL statement, as functions, so that each still costs the worker one
-- round trip. (A data-modifying CTE cannot see rows changed by a sibling CTE
-- of the same statement; statements of a PL/pgSQL function can.)
--
-- {schema} is the quoted schema name and {channel} the quoted LISTEN/NOTIFY
-- channel of this schema, both from validated identifiers. Times come from the
-- server's now() only.
--
-- Every function fixes how its statements may be planned, with SET clauses
-- (on the function, so they hold on application connections too): no
-- sequential or bitmap scans, no hash or merge joins. Each statement here has
-- exactly one good plan (an ordered walk of a partial index, or primary-key
-- look-ups for a small batch), while a queue table's statistics are nearly
-- always wrong: it churns, and autovacuum (hence ANALYZE) may be off. Without
-- the pins, a bitmap scan plus a sort of every queued job, chosen once because
-- the planner believed the queue empty, turned a 2 ms claim into 150 ms, and a
-- cached generic plan keeps such a choice for the life of the connection.
-- With them, generic plans are safe and save re-planning on every call.

-- Lease-expired error records: the caller passes the msgpack encoding of
-- fastjobs.job.lease_expired_error() cut into three parts around the attempt
-- (a uint32) and the time (a float64), so the record is built here per job:
--   err_head || int4send(attempt) || err_mid || float8send(epoch) || err_tail

-- Take back expired leases: back to the queue (at the end of the FIFO), or dead
-- when the attempts are used up. Returns how many jobs were taken back.
CREATE FUNCTION {schema}.recover_expired(
    p_err_head bytea, p_err_mid bytea, p_err_tail bytea, p_limit integer
) RETURNS integer LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_now      timestamptz := now();
    v_at       bytea := float8send(date_part('epoch', now()));
    v_requeued integer;
    v_killed   integer;
    v_queues   text[];
BEGIN
    WITH expired AS (
        SELECT e.id FROM {schema}.jobs e
        WHERE e.state = 2 AND e.lease_until <= v_now
        ORDER BY e.lease_until
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), requeued AS (
        UPDATE {schema}.jobs j
        SET state = 1, lease_until = NULL, seq = nextval('{schema}.job_seq'),
            errors = array_append(j.errors, p_err_head || int4send(j.attempt) || p_err_mid || v_at || p_err_tail)
        FROM expired
        WHERE j.id = expired.id AND j.attempt < j.max_attempts
        RETURNING j.queue
    ), killed AS (
        DELETE FROM {schema}.jobs j
        USING expired
        WHERE j.id = expired.id AND j.attempt >= j.max_attempts
        RETURNING j.*
    ), buried AS (
        INSERT INTO {schema}.finished_jobs
            (id, queue, state, priority, attempt, max_attempts, token, enqueued_at, run_at,
             started_at, finished_at, unique_key, unique_ttl, unique_until, body, result, errors, progress)
        SELECT k.id, k.queue, 5, k.priority, k.attempt, k.max_attempts, k.token, k.enqueued_at, k.run_at,
               k.started_at, v_now, k.unique_key, k.unique_ttl, NULL, k.body, NULL,
               array_append(k.errors, p_err_head || int4send(k.attempt) || p_err_mid || v_at || p_err_tail),
               k.progress
        FROM killed k
    )
    SELECT (SELECT count(*) FROM requeued), (SELECT count(*) FROM killed),
           (SELECT array_agg(DISTINCT r.queue) FROM requeued r)
    INTO v_requeued, v_killed, v_queues;
    IF v_queues IS NOT NULL THEN
        PERFORM pg_notify({channel}, q) FROM unnest(v_queues) AS q;
    END IF;
    RETURN v_requeued + v_killed;
END
$$;

-- Scheduled and retry-pending jobs whose time has come become queued. They keep
-- their seq, so a delayed job keeps its enqueue position once due.
CREATE FUNCTION {schema}.promote_due(p_limit integer) RETURNS integer LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_promoted integer;
BEGIN
    UPDATE {schema}.jobs j
    SET state = 1
    WHERE j.id = ANY (ARRAY(
        SELECT d.id FROM {schema}.jobs d
        WHERE d.state IN (0, 4) AND d.run_at <= now()
        ORDER BY d.run_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_promoted = ROW_COUNT;
    RETURN v_promoted;
END
$$;

-- Lease up to p_limit ready jobs from p_queues, in that order, skipping paused
-- queues; inside a queue highest priority first, then FIFO. The UPDATE finds the rows the sub-select
-- locked by their ctid (a TID scan, no second index descent per job: 15% of
-- the claim's cost). A locked row cannot move; if it ever had, the UPDATE would
-- skip it rather than touch another row. Neither this UPDATE nor promote_due's
-- repeats the state test: the rows are locked already, and the test lets the
-- planner AND in the whole partial index. Recovers expired leases and promotes due
-- jobs first, so one worker alone needs no separate maintenance call. Every
-- claim counts an attempt and bumps the job's lease token (the fence).
CREATE FUNCTION {schema}.claim(
    p_queues text[], p_limit integer, p_lease double precision,
    p_err_head bytea, p_err_mid bytea, p_err_tail bytea,
    OUT claimed_ids text[], OUT claimed_tokens bigint[], OUT claimed_attempts integer[], OUT claimed_bodies bytea[]
) LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_left     integer := p_limit;
    v_got      integer;
    v_queue    text;
    v_until    timestamptz := now() + p_lease * interval '1 second';
    v_ids      text[];
    v_tokens   bigint[];
    v_attempts integer[];
    v_bodies   bytea[];
BEGIN
    -- One row of arrays, not a row per job: cheaper to build here and to decode.
    claimed_ids := '{}';
    claimed_tokens := '{}';
    claimed_attempts := '{}';
    claimed_bodies := '{}';
    IF p_limit <= 0 THEN
        RETURN;
    END IF;
    -- Paused queues are left out here, once per claim (a primary-key probe per
    -- queue named), so the claim statement below stays the bare walk of
    -- jobs_claim. A pause committed after this snapshot takes effect at the
    -- next claim.
    p_queues := ARRAY(
        SELECT w.queue FROM unnest(p_queues) WITH ORDINALITY AS w(queue, ord)
        WHERE NOT EXISTS (SELECT 1 FROM {schema}.paused_queues p WHERE p.queue = w.queue)
        ORDER BY w.ord);
    -- Two index probes when there is nothing to do (the common case).
    IF EXISTS (SELECT 1 FROM {schema}.jobs e WHERE e.state = 2 AND e.lease_until <= now()) THEN
        PERFORM {schema}.recover_expired(p_err_head, p_err_mid, p_err_tail, 1000);
    END IF;
    IF EXISTS (SELECT 1 FROM {schema}.jobs d WHERE d.state IN (0, 4) AND d.run_at <= now()) THEN
        PERFORM {schema}.promote_due(10000);
    END IF;
    FOREACH v_queue IN ARRAY p_queues LOOP
        WITH claimed AS (
            UPDATE {schema}.jobs j
            SET state = 2, attempt = j.attempt + 1, token = j.token + 1,
                started_at = now(), lease_until = v_until
            WHERE j.ctid = ANY (ARRAY(
                SELECT c.ctid FROM {schema}.jobs c
                WHERE c.state = 1 AND c.queue = v_queue
                ORDER BY c.priority DESC, c.seq
                LIMIT v_left
                FOR UPDATE SKIP LOCKED))
            RETURNING j.id, j.token, j.attempt, j.body, j.priority, j.seq
        )
        SELECT array_agg(c.id ORDER BY c.priority DESC, c.seq),
               array_agg(c.token ORDER BY c.priority DESC, c.seq),
               array_agg(c.attempt ORDER BY c.priority DESC, c.seq),
               array_agg(c.body ORDER BY c.priority DESC, c.seq),
               count(*)
        INTO v_ids, v_tokens, v_attempts, v_bodies, v_got
        FROM claimed c;
        IF v_got > 0 THEN
            claimed_ids := claimed_ids || v_ids;
            claimed_tokens := claimed_tokens || v_tokens;
            claimed_attempts := claimed_attempts || v_attempts;
            claimed_bodies := claimed_bodies || v_bodies;
            v_left := v_left - v_got;
            EXIT WHEN v_left <= 0;
        END IF;
    END LOOP;
END
$$;

-- Apply a batch of acks (kinds: 0 succeed, 1 retry, 2 dead, 3 release), each
-- only if the job is active with the same token. Returns the 1-based positions
-- of the acks that applied. Callers pass each (job id, token) pair at most once
-- (one id may come with several tokens: only the current one matches), and may pass
-- NULL for p_kinds (all succeed), p_payloads (none) and p_delays (all 0): the
-- common batch then costs the client two arrays to encode instead of five.
--
-- Here and in renew the state test is written (j.state + 0) = 2 so that it
-- cannot match the partial index jobs_lease: the batch must be joined by
-- primary-key look-ups. Statistics gathered while no job was active make the
-- planner believe jobs_lease empty; it then drove a nested loop from that index
-- and re-scanned the whole batch for every active job (an ack or renewal of 100
-- took 250 ms with 20,000 active jobs instead of 1 ms).
CREATE FUNCTION {schema}.ack(
    p_ids text[], p_tokens bigint[], p_kinds smallint[], p_payloads bytea[],
    p_delays double precision[], p_keep_results boolean
) RETURNS integer[] LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_now     timestamptz := now();
    v_applied integer[] := '{}';
    v_part    integer[];
    v_queues  text[];
BEGIN
    IF p_kinds IS NULL THEN
        p_kinds := array_fill(0::smallint, ARRAY[cardinality(p_ids)]);
    END IF;
    IF p_payloads IS NULL THEN
        p_payloads := array_fill(NULL::bytea, ARRAY[cardinality(p_ids)]);
    END IF;
    IF p_delays IS NULL THEN
        p_delays := array_fill(0::double precision, ARRAY[cardinality(p_ids)]);
    END IF;
    IF 0 = ANY (p_kinds) THEN
        IF p_keep_results THEN
            WITH a AS (
                SELECT * FROM unnest(p_ids, p_tokens, p_kinds, p_payloads) WITH ORDINALITY
                    AS a(id, token, kind, payload, ord)
                WHERE a.kind = 0
            ), done AS (
                DELETE FROM {schema}.jobs j
                USING a
                WHERE j.id = a.id AND j.token = a.token AND (j.state + 0) = 2
                RETURNING j.*, a.payload, a.ord
            ), kept AS (
                INSERT INTO {schema}.finished_jobs
                    (id, queue, state, priority, attempt, max_attempts, token, enqueued_at, run_at,
                     started_at, finished_at, unique_key, unique_ttl, unique_until, body, result, errors, progress)
                SELECT d.id, d.queue, 3, d.priority, d.attempt, d.max_attempts, d.token, d.enqueued_at,
                       d.run_at, d.started_at, v_now, d.unique_key, d.unique_ttl,
                       CASE WHEN d.unique_ttl > 0 AND d.unique_key IS NOT NULL
                            THEN v_now + d.unique_ttl * interval '1 second' END,
                       d.body, d.payload, d.errors, d.progress
                FROM done d
            )
            SELECT array_agg(done.ord::integer) INTO v_part FROM done;
        ELSE
            -- Results are not kept, but a job whose unique key is held after
            -- success keeps a row (without its result) to hold it from, until
            -- its window closes and cleanup takes it.
            WITH a AS (
                SELECT * FROM unnest(p_ids, p_tokens, p_kinds) WITH ORDINALITY AS a(id, token, kind, ord)
                WHERE a.kind = 0
            ), done AS (
                DELETE FROM {schema}.jobs j
                USING a
                WHERE j.id = a.id AND j.token = a.token AND (j.state + 0) = 2
                RETURNING j.*, a.ord
            ), held AS (
                INSERT INTO {schema}.finished_jobs
                    (id, queue, state, priority, attempt, max_attempts, token, enqueued_at, run_at,
                     started_at, finished_at, unique_key, unique_ttl, unique_until, body, result, errors, progress)
                SELECT d.id, d.queue, 3, d.priority, d.attempt, d.max_attempts, d.token, d.enqueued_at,
                       d.run_at, d.started_at, v_now, d.unique_key, d.unique_ttl,
                       v_now + d.unique_ttl * interval '1 second', d.body, NULL, d.errors, d.progress
                FROM done d
                WHERE d.unique_ttl > 0 AND d.unique_key IS NOT NULL
            )
            SELECT array_agg(done.ord::integer) INTO v_part FROM done;
        END IF;
        v_applied := v_applied || coalesce(v_part, '{}');
    END IF;

    IF 1 = ANY (p_kinds) THEN
        -- A retry goes to the end of the FIFO (a new seq), like a fresh push.
        WITH a AS (
            SELECT * FROM unnest(p_ids, p_tokens, p_kinds, p_payloads, p_delays) WITH ORDINALITY
                AS a(id, token, kind, payload, delay, ord)
            WHERE a.kind = 1
        ), retried AS (
            UPDATE {schema}.jobs j
            SET state = CASE WHEN a.delay > 0 THEN 4 ELSE 1 END,
                run_at = CASE WHEN a.delay > 0 THEN v_now + a.delay * interval '1 second' ELSE v_now END,
                errors = CASE WHEN a.payload IS NULL THEN j.errors ELSE array_append(j.errors, a.payload) END,
                lease_until = NULL,
                seq = nextval('{schema}.job_seq')
            FROM a
            WHERE j.id = a.id AND j.token = a.token AND (j.state + 0) = 2
            RETURNING a.ord, j.queue
        )
        SELECT array_agg(retried.ord::integer), array_agg(DISTINCT retried.queue)
        INTO v_part, v_queues FROM retried;
        v_applied := v_applied || coalesce(v_part, '{}');
    END IF;

    IF 2 = ANY (p_kinds) THEN
        WITH a AS (
            SELECT * FROM unnest(p_ids, p_tokens, p_kinds, p_payloads) WITH ORDINALITY
                AS a(id, token, kind, payload, ord)
            WHERE a.kind = 2
        ), done AS (
            DELETE FROM {schema}.jobs j
            USING a
            WHERE j.id = a.id AND j.token = a.token AND (j.state + 0) = 2
            RETURNING j.*, a.payload, a.ord
        ), buried AS (
            INSERT INTO {schema}.finished_jobs
                (id, queue, state, priority, attempt, max_attempts, token, enqueued_at, run_at,
                 started_at, finished_at, unique_key, unique_ttl, unique_until, body, result, errors, progress)
            SELECT d.id, d.queue, 5, d.priority, d.attempt, d.max_attempts, d.token, d.enqueued_at,
                   d.run_at, d.started_at, v_now, d.unique_key, d.unique_ttl, NULL, d.body, NULL,
                   CASE WHEN d.payload IS NULL THEN d.errors ELSE array_append(d.errors, d.payload) END,
                   d.progress
            FROM done d
        )
        SELECT array_agg(done.ord::integer) INTO v_part FROM done;
        v_applied := v_applied || coalesce(v_part, '{}');
    END IF;

    IF 3 = ANY (p_kinds) THEN
        -- Never started: back to the queue without using the attempt.
        WITH a AS (
            SELECT * FROM unnest(p_ids, p_tokens, p_kinds) WITH ORDINALITY AS a(id, token, kind, ord)
            WHERE a.kind = 3
        ), released AS (
            UPDATE {schema}.jobs j
            SET state = 1, attempt = j.attempt - 1, lease_until = NULL,
                seq = nextval('{schema}.job_seq')
            FROM a
            WHERE j.id = a.id AND j.token = a.token AND (j.state + 0) = 2
            RETURNING a.ord, j.queue
        )
        SELECT array_agg(released.ord::integer), coalesce(v_queues, '{}') || array_agg(DISTINCT released.queue)
        INTO v_part, v_queues FROM released;
        v_applied := v_applied || coalesce(v_part, '{}');
    END IF;

    IF v_queues IS NOT NULL THEN
        PERFORM pg_notify({channel}, q) FROM (SELECT DISTINCT unnest(v_queues) AS q) AS woken WHERE q IS NOT NULL;
    END IF;
    RETURN v_applied;
END
$$;

-- Extend leases that are still held: (job id, token, seconds from now).
-- Returns the 1-based positions of the leases that were extended. Callers pass
-- each (job id, token) pair at most once; (j.state + 0): see ack.
CREATE FUNCTION {schema}.renew(p_ids text[], p_tokens bigint[], p_seconds double precision[])
RETURNS integer[] LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_renewed integer[];
BEGIN
    WITH renewed AS (
        UPDATE {schema}.jobs j
        SET lease_until = now() + l.seconds * interval '1 second'
        FROM unnest(p_ids, p_tokens, p_seconds) WITH ORDINALITY AS l(id, token, seconds, ord)
        WHERE j.id = l.id AND j.token = l.token AND (j.state + 0) = 2
        RETURNING l.ord
    )
    SELECT array_agg(renewed.ord::integer) INTO v_renewed FROM renewed;
    RETURN v_renewed;
END
$$;

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
CREATE FUNCTION {schema}.refuse_finished_id(p_id text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    RAISE unique_violation USING
        MESSAGE = format('job id %s already exists (it has finished; ids are unique until cleanup)', quote_literal(p_id)),
        CONSTRAINT = 'finished_jobs_pkey';
END
$$;

-- Enqueue a batch without unique keys: one INSERT from the unnested arrays, and
-- one NOTIFY per queue (delivered at commit: a rolled-back enqueue wakes no
-- one). Ids are unique across live and finished jobs.
CREATE FUNCTION {schema}.enqueue(
    p_ids text[], p_queues text[], p_priorities bigint[], p_delays double precision[],
    p_max_attempts integer[], p_bodies bytea[]
) RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
BEGIN
    INSERT INTO {schema}.jobs (id, queue, state, priority, seq, max_attempts, enqueued_at, run_at, body)
    SELECT n.id, n.queue, CASE WHEN n.delay > 0 THEN 0 ELSE 1 END, n.priority,
           nextval('{schema}.job_seq'), n.max_attempts, now(),
           CASE WHEN n.delay > 0 THEN now() + n.delay * interval '1 second' ELSE now() END,
           n.body
    FROM unnest(p_ids, p_queues, p_priorities, p_delays, p_max_attempts, p_bodies)
        WITH ORDINALITY AS n(id, queue, priority, delay, max_attempts, body, ord)
    ORDER BY n.ord;
    PERFORM {schema}.refuse_finished_id(f.id) FROM {schema}.finished_jobs f WHERE f.id = ANY (p_ids);
    PERFORM pg_notify({channel}, q) FROM (SELECT DISTINCT unnest(p_queues) AS q) AS woken;
END
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
CREATE FUNCTION {schema}.enqueue_unique(
    p_ids text[], p_queues text[], p_priorities bigint[], p_delays double precision[],
    p_max_attempts integer[], p_bodies bytea[], p_unique_keys text[], p_unique_ttls double precision[]
) RETURNS TABLE (job_position integer, holder_id text) LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_stored integer;
BEGIN
    INSERT INTO {schema}.jobs
        (id, queue, state, priority, seq, max_attempts, enqueued_at, run_at, unique_key, unique_ttl, body)
    SELECT n.id, n.queue, CASE WHEN n.delay > 0 THEN 0 ELSE 1 END, n.priority,
           nextval('{schema}.job_seq'), n.max_attempts, now(),
           CASE WHEN n.delay > 0 THEN now() + n.delay * interval '1 second' ELSE now() END,
           n.unique_key, CASE WHEN n.unique_ttl > 0 THEN n.unique_ttl END, n.body
    FROM unnest(p_ids, p_queues, p_priorities, p_delays, p_max_attempts, p_bodies, p_unique_keys, p_unique_ttls)
        WITH ORDINALITY AS n(id, queue, priority, delay, max_attempts, body, unique_key, unique_ttl, ord)
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
    END IF;
    RETURN QUERY
        SELECT n.ord::integer, coalesce(h.id, j.id)
        FROM unnest(p_queues, p_unique_keys) WITH ORDINALITY AS n(queue, unique_key, ord)
        LEFT JOIN {schema}.jobs j ON j.queue = n.queue AND j.unique_key = n.unique_key
        LEFT JOIN LATERAL (
            SELECT f.id FROM {schema}.finished_jobs f
            WHERE f.queue = n.queue AND f.unique_key = n.unique_key AND f.unique_until > now()
            ORDER BY f.unique_until DESC
            LIMIT 1) AS h ON true
        WHERE n.unique_key IS NOT NULL;
END
$$;
