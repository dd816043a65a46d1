-- fastjobs PostgreSQL functions: the operations that take more than one SQL
-- statement, so that each still costs the worker one round trip. (A
-- data-modifying CTE cannot see rows changed by a sibling CTE of the same
-- statement; statements of a PL/pgSQL function can.) This file: the claim and
-- the maintenance it does first.
--
-- {schema} is the quoted schema name and {channel} the quoted LISTEN/NOTIFY
-- channel of this schema, both from validated identifiers; {QUEUED} and the
-- other state names are the fastjobs._core constants; the other upper-case
-- names (PLANNING_PINS, INSERT_FINISHED, ...) stand for text that several
-- statements share, written once in ../snippets.sql. Times come from the
-- server's now() only. Every function here is CREATE OR REPLACE: the files of
-- this folder are applied again, all of them, whenever their text changes
-- (fastjobs.backends.postgres.schema), so a fix to a function is an edit here,
-- never a migration. A function whose arguments or result type change needs a
-- DROP FUNCTION IF EXISTS of its old signature before its CREATE.
--
-- Every function fixes how its statements may be planned, with SET clauses
-- (PLANNING_PINS, on the function, so they hold on application connections too): no
-- sequential or bitmap scans, no hash or merge joins. Each statement here has
-- exactly one good plan (an ordered walk of a partial index, or primary-key
-- look-ups for a small batch), while a queue table's statistics are nearly
-- always wrong: it churns, and autovacuum (hence ANALYZE) may be off. Without
-- the pins, a bitmap scan plus a sort of every queued job, chosen once because
-- the planner believed the queue empty, turned a 2 ms claim into 150 ms, and a
-- cached generic plan keeps such a choice for the life of the connection.
-- With them, generic plans are safe and save re-planning on every call.

-- Lease-expired error records: the caller passes the msgpack error record it
-- builds around fastjobs.job.LEASE_EXPIRED_MESSAGE (the one source of the
-- text), cut into three parts around the attempt (a uint32) and the time (a
-- float64), so the record is built here per job:
--   err_head || int4send(attempt) || err_mid || float8send(epoch) || err_tail

-- Take back expired leases: back to the queue (at the end of the FIFO), or dead
-- when the attempts are used up. Returns how many jobs were taken back. A job
-- killed here settles its dependants, and one with a limit key wakes its queue
-- (a slot of the key is free again). p_events: publish released and dead
-- events (see events.sql).
CREATE OR REPLACE FUNCTION {schema}.recover_expired(
    p_err_head bytea, p_err_mid bytea, p_err_tail bytea, p_limit integer, p_events boolean
) RETURNS integer LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_now      timestamptz := now();
    v_at       bytea := float8send(date_part('epoch', now()));
    v_requeued integer;
    v_killed   integer;
    v_queues   text[];
    v_dead     text[];
    v_kinds    smallint[];
    v_ev_ids   text[];
    v_ev_tasks text[];
    v_ev_queues text[];
BEGIN
    WITH expired AS (
        SELECT e.id FROM {schema}.jobs e
        WHERE e.state = {ACTIVE} AND e.lease_until <= v_now
        ORDER BY e.lease_until
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), requeued AS (
        UPDATE {schema}.jobs j
        SET state = {QUEUED}, lease_until = NULL, seq = nextval('{schema}.job_seq'),
            errors = array_append(j.errors, p_err_head || int4send(j.attempt) || p_err_mid || v_at || p_err_tail)
        FROM expired
        WHERE j.id = expired.id AND j.attempt < j.max_attempts
        RETURNING j.id, j.queue, j.task
    ), killed AS (
        DELETE FROM {schema}.jobs j
        USING expired
        WHERE j.id = expired.id AND j.attempt >= j.max_attempts
        RETURNING j.*
    ), buried AS (
        {INSERT_FINISHED}
               {DEAD}, v_now, NULL, NULL,
               array_append(errors, p_err_head || int4send(attempt) || p_err_mid || v_at || p_err_tail)
        FROM killed
    )
    SELECT (SELECT count(*) FROM requeued), (SELECT count(*) FROM killed),
           (SELECT array_agg(DISTINCT q.queue) FROM (
                SELECT r.queue FROM requeued r
                UNION ALL
                SELECT k.queue FROM killed k WHERE k.limit_key IS NOT NULL) AS q),
           (SELECT array_agg(k.id) FROM killed k),
           (SELECT array_agg(e.kind) FROM (
                SELECT 6::smallint AS kind, r.id, r.task, r.queue FROM requeued r
                UNION ALL
                SELECT 5::smallint, k.id, k.task, k.queue FROM killed k) AS e),
           (SELECT array_agg(e.id) FROM (SELECT r.id FROM requeued r UNION ALL SELECT k.id FROM killed k) AS e),
           (SELECT array_agg(e.task) FROM (SELECT r.task FROM requeued r UNION ALL SELECT k.task FROM killed k) AS e),
           (SELECT array_agg(e.queue) FROM (SELECT r.queue FROM requeued r UNION ALL SELECT k.queue FROM killed k) AS e)
    INTO v_requeued, v_killed, v_queues, v_dead, v_kinds, v_ev_ids, v_ev_tasks, v_ev_queues;
    IF p_events AND v_ev_ids IS NOT NULL THEN
        PERFORM {schema}.publish(v_kinds, v_ev_ids, v_ev_tasks, v_ev_queues);
    END IF;
    IF v_queues IS NOT NULL THEN
        PERFORM pg_notify({channel}, q) FROM unnest(v_queues) AS q;
    END IF;
    IF v_dead IS NOT NULL AND EXISTS (SELECT 1 FROM {schema}.job_deps) THEN
        PERFORM {schema}.settle(v_dead, array_fill(true, ARRAY[cardinality(v_dead)]), p_events);
    END IF;
    RETURN v_requeued + v_killed;
END
$$;

-- Scheduled and retry-pending jobs whose time has come become queued. They keep
-- their seq, so a delayed job keeps its enqueue position once due.
CREATE OR REPLACE FUNCTION {schema}.promote_due(p_limit integer) RETURNS integer LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_promoted integer;
BEGIN
    UPDATE {schema}.jobs j
    SET state = {QUEUED}
    WHERE j.id = ANY (ARRAY(
        SELECT d.id FROM {schema}.jobs d
        WHERE d.state IN ({SCHEDULED}, {RETRY_PENDING}) AND d.run_at <= now()
        ORDER BY d.run_at
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED));
    GET DIAGNOSTICS v_promoted = ROW_COUNT;
    RETURN v_promoted;
END
$$;

-- Lease up to p_limit ready jobs from p_queues, in that order, skipping paused
-- queues; inside a queue highest priority first, then FIFO. Recovers expired
-- leases and promotes due jobs first, so one worker alone needs no separate
-- maintenance call (two index probes when there is nothing to do). Every
-- claim counts an attempt and bumps the job's lease token (the fence). Returns
-- one row of arrays, not a row per job: cheaper to build here and to decode.
-- Paused queues are left out once per claim (a primary-key probe per queue
-- named), so the claim statement stays the bare walk of jobs_claim; a pause
-- committed after this snapshot takes effect at the next claim.
--
-- A queue without ready limited jobs is one statement on jobs_claim (which
-- holds the unlimited jobs only) after one probe of the empty
-- jobs_claim_limited. Its UPDATE finds the rows the sub-select locked by their
-- ctid (a TID scan, no second index descent per job: 15% of the claim's cost).
-- A locked row cannot move; if it ever had, the UPDATE would skip it rather
-- than touch another row. Neither this UPDATE nor promote_due's repeats the
-- state test: the rows are locked already, and the test lets the planner AND
-- in the whole partial index.
--
-- With ready limited jobs, the claim visits each key that has
-- ready jobs, its oldest first: locks the key's limit_keys row (SKIP LOCKED:
-- a key another claim is serving is left to it, and this claim goes on with
-- the other keys and the unlimited jobs, so a limited key never blocks its
-- queue), counts the key's active jobs and its leases in the window (fresh
-- statements, after the lock: every earlier claim of the key has committed),
-- and locks as many of its ready jobs as the key allows. The batch is then the
-- best of those and of the unlimited jobs, by priority then seq; jobs over
-- their key's limit stay queued where they are. Claims lock FOR NO KEY UPDATE:
-- enough against each other, and compatible with enqueue_flow's KEY SHARE on
-- a parent, which would otherwise hide the parent from claims until that
-- enqueue commits. p_events: publish a started event per claimed job (one
-- NOTIFY for the whole claim; see events.sql).
CREATE OR REPLACE FUNCTION {schema}.claim(
    p_queues text[], p_limit integer, p_lease double precision,
    p_err_head bytea, p_err_mid bytea, p_err_tail bytea, p_events boolean,
    OUT claimed_ids text[], OUT claimed_tokens bigint[], OUT claimed_attempts integer[], OUT claimed_bodies bytea[]
) LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_left     integer := p_limit;
    v_got      integer;
    v_queue    text;
    v_until    timestamptz := now() + p_lease * interval '1 second';
    v_ids      text[];
    v_tokens   bigint[];
    v_attempts integer[];
    v_bodies   bytea[];
    v_tasks    text[];
    v_ev_tasks text[] := '{}';
    v_ev_queues text[] := '{}';
    v_key      text;
    v_conc     integer;
    v_rate     integer;
    v_per      double precision;
    v_allow    integer;
    v_clock    timestamptz;
    v_tids     tid[];
    v_prios    bigint[];
    v_seqs     bigint[];
    v_lkeys    text[];
    v_lclocks  timestamptz[];
    v_lrated   boolean[];
BEGIN
    claimed_ids := '{}';
    claimed_tokens := '{}';
    claimed_attempts := '{}';
    claimed_bodies := '{}';
    IF p_limit <= 0 THEN
        RETURN;
    END IF;
    p_queues := ARRAY(
        SELECT w.queue FROM unnest(p_queues) WITH ORDINALITY AS w(queue, ord)
        WHERE NOT EXISTS (SELECT 1 FROM {schema}.paused_queues p WHERE p.queue = w.queue)
        ORDER BY w.ord);
    IF EXISTS (SELECT 1 FROM {schema}.jobs e WHERE e.state = {ACTIVE} AND e.lease_until <= now()) THEN
        PERFORM {schema}.recover_expired(p_err_head, p_err_mid, p_err_tail, 1000, p_events);
    END IF;
    IF EXISTS (SELECT 1 FROM {schema}.jobs d WHERE d.state IN ({SCHEDULED}, {RETRY_PENDING}) AND d.run_at <= now()) THEN
        PERFORM {schema}.promote_due(10000);
    END IF;
    FOREACH v_queue IN ARRAY p_queues LOOP
        IF NOT EXISTS (SELECT 1 FROM {schema}.jobs l
                       WHERE l.state = {QUEUED} AND l.limit_key IS NOT NULL AND l.queue = v_queue) THEN
            WITH claimed AS (
                UPDATE {schema}.jobs j
                SET state = {ACTIVE}, attempt = j.attempt + 1, token = j.token + 1,
                    started_at = now(), lease_until = v_until
                WHERE j.ctid = ANY (ARRAY(
                    SELECT c.ctid FROM {schema}.jobs c
                    WHERE c.state = {QUEUED} AND c.limit_key IS NULL AND c.queue = v_queue
                    ORDER BY c.priority DESC, c.seq
                    LIMIT v_left
                    FOR NO KEY UPDATE SKIP LOCKED))
                RETURNING j.id, j.token, j.attempt, j.body, j.priority, j.seq, j.task
            )
            {COLLECT_CLAIMED}
        ELSE
            v_tids := '{}';
            v_prios := '{}';
            v_seqs := '{}';
            v_lkeys := '{}';
            v_lclocks := '{}';
            v_lrated := '{}';
            -- The keys with ready jobs (a skip scan of jobs_claim_limited), by their first job.
            FOR v_key IN
                WITH RECURSIVE k(key) AS (
                    (SELECT f.limit_key FROM {schema}.jobs f
                     WHERE f.state = {QUEUED} AND f.limit_key IS NOT NULL AND f.queue = v_queue
                     ORDER BY f.limit_key LIMIT 1)
                    UNION ALL
                    SELECT (SELECT f.limit_key FROM {schema}.jobs f
                            WHERE f.state = {QUEUED} AND f.limit_key IS NOT NULL AND f.queue = v_queue
                              AND f.limit_key > k.key
                            ORDER BY f.limit_key LIMIT 1)
                    FROM k WHERE k.key IS NOT NULL
                )
                SELECT k.key FROM k
                CROSS JOIN LATERAL (
                    SELECT h.priority, h.seq FROM {schema}.jobs h
                    WHERE h.state = {QUEUED} AND h.limit_key = k.key AND h.queue = v_queue
                    ORDER BY h.priority DESC, h.seq LIMIT 1) AS head
                WHERE k.key IS NOT NULL
                ORDER BY head.priority DESC, head.seq
            LOOP
                EXIT WHEN cardinality(v_tids) >= v_left;
                SELECT l.concurrency, l.rate, l.per INTO v_conc, v_rate, v_per
                FROM {schema}.limit_keys l WHERE l.queue = v_queue AND l.key = v_key
                FOR UPDATE SKIP LOCKED;
                CONTINUE WHEN NOT FOUND;
                v_allow := v_left - cardinality(v_tids);
                IF v_conc > 0 THEN
                    v_allow := least(v_allow, v_conc - (
                        SELECT count(*) FROM {schema}.jobs a
                        WHERE a.state = {ACTIVE} AND a.limit_key = v_key AND a.queue = v_queue)::integer);
                END IF;
                v_clock := clock_timestamp();
                IF v_rate > 0 AND v_allow > 0 THEN
                    DELETE FROM {schema}.limit_log g
                    WHERE g.queue = v_queue AND g.key = v_key AND g.leased_at <= v_clock - v_per * interval '1 second';
                    v_allow := least(v_allow, v_rate - (
                        SELECT count(*) FROM {schema}.limit_log g WHERE g.queue = v_queue AND g.key = v_key)::integer);
                END IF;
                CONTINUE WHEN v_allow <= 0;
                v_lkeys := v_lkeys || v_key;
                v_lclocks := v_lclocks || v_clock;
                v_lrated := v_lrated || (v_rate > 0);
                SELECT v_tids || coalesce(array_agg(c.ctid), '{}'), v_prios || coalesce(array_agg(c.priority), '{}'),
                       v_seqs || coalesce(array_agg(c.seq), '{}')
                INTO v_tids, v_prios, v_seqs
                FROM (SELECT c.ctid, c.priority, c.seq FROM {schema}.jobs c
                      WHERE c.state = {QUEUED} AND c.limit_key = v_key AND c.queue = v_queue
                      ORDER BY c.priority DESC, c.seq
                      LIMIT v_allow
                      FOR NO KEY UPDATE SKIP LOCKED) AS c;
            END LOOP;
            WITH plain AS (
                SELECT c.ctid AS tid, c.priority, c.seq FROM {schema}.jobs c
                WHERE c.state = {QUEUED} AND c.limit_key IS NULL AND c.queue = v_queue
                ORDER BY c.priority DESC, c.seq
                LIMIT v_left
                FOR NO KEY UPDATE SKIP LOCKED
            ), claimed AS (
                UPDATE {schema}.jobs j
                SET state = {ACTIVE}, attempt = j.attempt + 1, token = j.token + 1,
                    started_at = CASE WHEN j.limit_key IS NULL THEN now()
                                      ELSE coalesce(v_lclocks[array_position(v_lkeys, j.limit_key)], now()) END,
                    lease_until = v_until
                WHERE j.ctid = ANY (ARRAY(
                    SELECT b.tid FROM (
                        SELECT p.tid, p.priority, p.seq FROM plain p
                        UNION ALL
                        SELECT * FROM unnest(v_tids, v_prios, v_seqs)) AS b(tid, priority, seq)
                    ORDER BY b.priority DESC, b.seq
                    LIMIT v_left))
                RETURNING j.id, j.token, j.attempt, j.body, j.priority, j.seq, j.task, j.limit_key, j.started_at
            ), logged AS (
                INSERT INTO {schema}.limit_log (queue, key, leased_at)
                SELECT v_queue, c.limit_key, c.started_at
                FROM claimed c JOIN unnest(v_lkeys, v_lrated) AS k(key, rated) ON k.key = c.limit_key
                WHERE k.rated
            )
            {COLLECT_CLAIMED}
        END IF;
        IF v_got > 0 THEN
            claimed_ids := claimed_ids || v_ids;
            claimed_tokens := claimed_tokens || v_tokens;
            claimed_attempts := claimed_attempts || v_attempts;
            claimed_bodies := claimed_bodies || v_bodies;
            IF p_events THEN
                v_ev_tasks := v_ev_tasks || v_tasks;
                v_ev_queues := v_ev_queues || array_fill(v_queue, ARRAY[v_got]);
            END IF;
            v_left := v_left - v_got;
            EXIT WHEN v_left <= 0;
        END IF;
    END LOOP;
    -- publish's own first test, made here: with nobody listening, the call
    -- (two functions, with their settings) cost ~0.4 us per claimed job.
    IF p_events AND cardinality(claimed_ids) > 0 AND EXISTS (SELECT 1 FROM {schema}.event_listeners) THEN
        PERFORM {schema}.publish(1::smallint, claimed_ids, v_ev_tasks, v_ev_queues);
    END IF;
END
$$;

-- The claim of fastjobs before the operations layer (functions revision 3),
-- for processes of that version during a rolling upgrade: no events.
CREATE OR REPLACE FUNCTION {schema}.claim(
    p_queues text[], p_limit integer, p_lease double precision,
    p_err_head bytea, p_err_mid bytea, p_err_tail bytea,
    OUT claimed_ids text[], OUT claimed_tokens bigint[], OUT claimed_attempts integer[], OUT claimed_bodies bytea[]
) LANGUAGE sql AS $$
    SELECT * FROM {schema}.claim(p_queues, p_limit, p_lease, p_err_head, p_err_mid, p_err_tail, false)
$$;
