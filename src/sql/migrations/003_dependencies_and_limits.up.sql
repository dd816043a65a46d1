-- fastjobs PostgreSQL schema, version 3: job dependencies (depends_on / after)
-- and per-(queue, key) limits (concurrency caps and sliding-window rates).
--
-- {schema} / {channel}: see 001 and 002. New state 7, waiting: a job whose
-- parents are not all finished. It lives in the hot table (it is still to
-- run), is never claimed, and moves to queued / scheduled, or to cancelled,
-- when its last parent finishes.
--
-- Everything here is built so that a job without parents and without a limit
-- costs what it cost before: its new columns stay NULL (no bytes beyond the
-- null bitmap), the plain claim walks the same partial index, now restricted
-- to rows without a limit key, and a finished job looks for dependants only
-- when job_deps holds any row at all (one probe).

ALTER TABLE {schema}.jobs DROP CONSTRAINT jobs_live_state;
ALTER TABLE {schema}.jobs ADD CONSTRAINT jobs_live_state CHECK (state IN (0, 1, 2, 4, 7));
ALTER TABLE {schema}.jobs
    ADD COLUMN parents         text[] COLLATE "C",  -- depends_on as enqueued; NULL: none
    ADD COLUMN dep_mode        smallint,            -- DependencyMode (0 succeeded, 1 finished, 2 failed)
    ADD COLUMN pending_parents integer,             -- parents not finished yet (the last value once released)
    ADD COLUMN failed_parents  integer,             -- parents that ended dead or cancelled
    ADD COLUMN limit_key       text COLLATE "C";    -- NewJob.limit.key; the key's settings are in limit_keys

ALTER TABLE {schema}.finished_jobs
    ADD COLUMN parents         text[] COLLATE "C",
    ADD COLUMN dep_mode        smallint,
    ADD COLUMN pending_parents integer,
    ADD COLUMN failed_parents  integer,
    ADD COLUMN limit_key       text COLLATE "C";

-- The plain claim leaves limited jobs alone: it may lease them only after the
-- key's counts were checked under the key's lock (claim's second step).
DROP INDEX {schema}.jobs_claim;
CREATE INDEX jobs_claim ON {schema}.jobs (queue, priority DESC, seq) WHERE state = 1 AND limit_key IS NULL;
-- Claim's second step: the keys with ready jobs in a queue (a skip scan over
-- the key column), and inside a key its jobs in claim order.
CREATE INDEX jobs_claim_limited ON {schema}.jobs (queue, limit_key, priority DESC, seq)
    WHERE state = 1 AND limit_key IS NOT NULL;
-- A key's active count, counted live under the key's lock (no counter to drift).
CREATE INDEX jobs_limit_active ON {schema}.jobs (queue, limit_key) WHERE state = 2 AND limit_key IS NOT NULL;

-- A waiting child's registration on each parent that had not finished when the
-- child was stored. The parent's finish (ack, lease recovery, cancel, or a
-- cascade) deletes its rows and updates the children in the same transaction,
-- so rows only ever name live parents; the primary key is the by-parent look-up.
CREATE TABLE {schema}.job_deps (
    parent text COLLATE "C" NOT NULL,
    child  text COLLATE "C" NOT NULL,
    CONSTRAINT job_deps_pkey PRIMARY KEY (parent, child)
);

-- One row per (queue, limit key): the lock that serializes claims of the key
-- (SELECT ... FOR UPDATE SKIP LOCKED: a claim never waits for another, it
-- serves the other keys), and the key's settings (the latest enqueue's win).
CREATE TABLE {schema}.limit_keys (
    queue       text             COLLATE "C" NOT NULL,
    key         text             COLLATE "C" NOT NULL,
    concurrency integer          NOT NULL,
    rate        integer          NOT NULL,
    per         double precision NOT NULL,
    CONSTRAINT limit_keys_pkey PRIMARY KEY (queue, key)
);

-- Leases of rate-limited keys in their current window, trimmed by the claim
-- that holds the key's lock. Times are clock_timestamp() read under that lock
-- (and are the leased jobs' started_at), not now(): they only grow from one
-- holder to the next, so trimming at one holder's time never drops an entry a
-- later holder still counts, although claims start in one order and take the
-- lock in another.
CREATE TABLE {schema}.limit_log (
    queue     text        COLLATE "C" NOT NULL,
    key       text        COLLATE "C" NOT NULL,
    leased_at timestamptz NOT NULL
);
CREATE INDEX limit_log_key ON {schema}.limit_log (queue, key, leased_at);

-- Take waiting children whose counts are settled out of waiting: released to
-- queued, or scheduled for their own delay counted from the release (a
-- waiting job's run_at - enqueued_at is its delay), keeping their seq, so
-- their enqueue position, like a delayed job; or cancelled per their mode.
-- Returns the ids it cancelled (the caller settles their own dependants).
-- Released queues are notified like an enqueue (at commit).
CREATE FUNCTION {schema}.resolve_waiting(p_children text[]) RETURNS text[] LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_queues    text[];
    v_cancelled text[];
BEGIN
    WITH released AS (
        UPDATE {schema}.jobs j
        SET state = CASE WHEN j.run_at > j.enqueued_at THEN 0 ELSE 1 END,
            run_at = now() + (j.run_at - j.enqueued_at)
        WHERE j.id = ANY (p_children) AND j.state = 7 AND j.pending_parents <= 0
          AND NOT (j.dep_mode = 0 AND j.failed_parents > 0)
          AND NOT (j.dep_mode = 2 AND j.failed_parents = 0)
        RETURNING j.queue
    )
    SELECT array_agg(DISTINCT released.queue) INTO v_queues FROM released;
    IF v_queues IS NOT NULL THEN
        PERFORM pg_notify({channel}, q) FROM unnest(v_queues) AS q;
    END IF;
    -- SUCCEEDED: one failed parent is enough, no need to wait for the others.
    WITH doomed AS (
        DELETE FROM {schema}.jobs j
        WHERE j.id = ANY (p_children) AND j.state = 7
          AND ((j.dep_mode = 0 AND j.failed_parents > 0)
               OR (j.dep_mode = 2 AND j.pending_parents <= 0 AND j.failed_parents = 0))
        RETURNING j.*
    ), kept AS (
        INSERT INTO {schema}.finished_jobs
            (id, queue, state, priority, attempt, max_attempts, token, enqueued_at, run_at,
             started_at, finished_at, unique_key, unique_ttl, body, result, errors, progress,
             parents, dep_mode, pending_parents, failed_parents, limit_key)
        SELECT d.id, d.queue, 6, d.priority, d.attempt, d.max_attempts, d.token, d.enqueued_at, d.run_at,
               d.started_at, now(), d.unique_key, d.unique_ttl, d.body, NULL, d.errors, d.progress,
               d.parents, d.dep_mode, d.pending_parents, d.failed_parents, d.limit_key
        FROM doomed d
    )
    SELECT array_agg(doomed.id) INTO v_cancelled FROM doomed;
    RETURN coalesce(v_cancelled, '{}');
END
$$;

-- Parents p_ids finished (p_failed: dead or cancelled): update their waiting
-- children, and theirs in turn for every child this cancels (the cascade, one
-- generation per turn of the loop).
--
-- Two parents of one child finishing in two transactions: each decrement is
-- an UPDATE of the child's row, so the second waits for the first to commit
-- and then applies to the row the first left; exactly one sees the count reach
-- zero. Children are locked in id order first, so that two such transactions
-- cannot deadlock on two shared children.
--
-- Callers run this in a statement after the one that finished the parents: a
-- fresh snapshot, taken after any child enqueue that held the parent's row
-- (FOR KEY SHARE, see enqueue_flow) committed, so its job_deps row is seen.
CREATE FUNCTION {schema}.settle_dependants(p_ids text[], p_failed boolean[]) RETURNS void LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_children text[];
    v_counts   integer[];
    v_fails    integer[];
BEGIN
    WHILE cardinality(p_ids) > 0 LOOP
        WITH gone AS (
            DELETE FROM {schema}.job_deps d
            USING unnest(p_ids, p_failed) AS f(id, failed)
            WHERE d.parent = f.id
            RETURNING d.child, f.failed
        ), per_child AS (
            SELECT g.child, count(*)::integer AS n, (count(*) FILTER (WHERE g.failed))::integer AS nf
            FROM gone g GROUP BY g.child
        )
        SELECT array_agg(c.child ORDER BY c.child), array_agg(c.n ORDER BY c.child), array_agg(c.nf ORDER BY c.child)
        INTO v_children, v_counts, v_fails
        FROM per_child c;
        EXIT WHEN v_children IS NULL;
        PERFORM 1 FROM {schema}.jobs j WHERE j.id = ANY (v_children) AND j.state = 7 ORDER BY j.id FOR NO KEY UPDATE;
        UPDATE {schema}.jobs j
        SET pending_parents = j.pending_parents - c.n, failed_parents = j.failed_parents + c.nf
        FROM unnest(v_children, v_counts, v_fails) AS c(child, n, nf)
        WHERE j.id = c.child AND j.state = 7;
        p_ids := {schema}.resolve_waiting(v_children);
        p_failed := array_fill(true, ARRAY[cardinality(p_ids)]);
    END LOOP;
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
CREATE FUNCTION {schema}.enqueue_flow(
    p_ids text[], p_queues text[], p_priorities bigint[], p_delays double precision[],
    p_max_attempts integer[], p_bodies bytea[], p_unique_keys text[], p_unique_ttls double precision[],
    p_modes smallint[], p_dep_counts integer[], p_limit_keys text[], p_limit_concurrency integer[],
    p_limit_rates integer[], p_limit_pers double precision[], p_dep_children text[], p_dep_parents text[]
) RETURNS TABLE (job_position integer, holder_id text) LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
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
                    p_unique_ttls, p_modes, p_dep_counts, p_limit_keys)
            WITH ORDINALITY AS u(id, queue, priority, delay, max_attempts, body, unique_key, unique_ttl,
                                 mode, dep_count, limit_key, ord)
    ), stored AS (
        INSERT INTO {schema}.jobs
            (id, queue, state, priority, seq, max_attempts, enqueued_at, run_at, unique_key, unique_ttl, body,
             parents, dep_mode, pending_parents, failed_parents, limit_key)
        SELECT n.id, n.queue, CASE WHEN n.dep_count > 0 THEN 7 WHEN n.delay > 0 THEN 0 ELSE 1 END, n.priority,
               nextval('{schema}.job_seq'), n.max_attempts, now(),
               CASE WHEN n.delay > 0 THEN now() + n.delay * interval '1 second' ELSE now() END,
               n.unique_key, CASE WHEN n.unique_ttl > 0 THEN n.unique_ttl END, n.body,
               CASE WHEN n.dep_count > 0 THEN p_dep_parents[(n.dep_end - n.dep_count + 1):n.dep_end] END,
               CASE WHEN n.dep_count > 0 THEN n.mode END,
               CASE WHEN n.dep_count > 0 THEN n.dep_count END,
               CASE WHEN n.dep_count > 0 THEN 0 END,
               n.limit_key
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
                   (count(*) FILTER (WHERE f.state IN (5, 6)))::integer AS failed
            FROM unnest(p_dep_children, p_dep_parents) AS d(child, parent)
            LEFT JOIN {schema}.finished_jobs f ON f.id = d.parent AND d.parent <> ALL (v_live)
            WHERE d.child = ANY (v_stored)
            GROUP BY d.child
        ) AS c
        WHERE j.id = c.child AND (j.pending_parents <> c.pending OR c.failed > 0);
        v_cancelled := {schema}.resolve_waiting(v_stored);
        IF cardinality(v_cancelled) > 0 THEN
            PERFORM {schema}.settle_dependants(v_cancelled, array_fill(true, ARRAY[cardinality(v_cancelled)]));
        END IF;
    END IF;
    IF cardinality(v_stored) > 0 THEN
        PERFORM pg_notify({channel}, q) FROM (SELECT DISTINCT unnest(p_queues) AS q) AS woken;
    END IF;
    IF p_unique_keys IS NOT NULL THEN
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
    END IF;
END
$$;

-- Cancel one job that has not finished; its dependants follow (cascade). An
-- active limited job frees a slot of its key: its queue's idle workers wake.
CREATE FUNCTION {schema}.cancel_job(p_id text) RETURNS integer LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_count integer;
    v_queue text;
BEGIN
    WITH cancelled AS (
        DELETE FROM {schema}.jobs j WHERE j.id = p_id RETURNING j.*
    ), kept AS (
        INSERT INTO {schema}.finished_jobs
            (id, queue, state, priority, attempt, max_attempts, token, enqueued_at, run_at,
             started_at, finished_at, unique_key, unique_ttl, body, result, errors, progress,
             parents, dep_mode, pending_parents, failed_parents, limit_key)
        SELECT c.id, c.queue, 6, c.priority, c.attempt, c.max_attempts, c.token, c.enqueued_at, c.run_at,
               c.started_at, now(), c.unique_key, c.unique_ttl, c.body, NULL, c.errors, c.progress,
               c.parents, c.dep_mode, c.pending_parents, c.failed_parents, c.limit_key
        FROM cancelled c
    )
    SELECT count(*), max(c.queue) FILTER (WHERE c.limit_key IS NOT NULL AND c.state = 2)
    INTO v_count, v_queue FROM cancelled c;
    IF v_count > 0 THEN
        IF v_queue IS NOT NULL THEN
            PERFORM pg_notify({channel}, v_queue);
        END IF;
        IF EXISTS (SELECT 1 FROM {schema}.job_deps) THEN
            PERFORM {schema}.settle_dependants(ARRAY[p_id], ARRAY[true]);
        END IF;
    END IF;
    RETURN v_count;
END
$$;

-- As in 002, plus: a job killed here settles its dependants, and one with a
-- limit key wakes its queue (a slot of the key is free again).
CREATE OR REPLACE FUNCTION {schema}.recover_expired(
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
    v_dead     text[];
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
             started_at, finished_at, unique_key, unique_ttl, unique_until, body, result, errors, progress,
             parents, dep_mode, pending_parents, failed_parents, limit_key)
        SELECT k.id, k.queue, 5, k.priority, k.attempt, k.max_attempts, k.token, k.enqueued_at, k.run_at,
               k.started_at, v_now, k.unique_key, k.unique_ttl, NULL, k.body, NULL,
               array_append(k.errors, p_err_head || int4send(k.attempt) || p_err_mid || v_at || p_err_tail),
               k.progress, k.parents, k.dep_mode, k.pending_parents, k.failed_parents, k.limit_key
        FROM killed k
    )
    SELECT (SELECT count(*) FROM requeued), (SELECT count(*) FROM killed),
           (SELECT array_agg(DISTINCT q.queue) FROM (
                SELECT r.queue FROM requeued r
                UNION ALL
                SELECT k.queue FROM killed k WHERE k.limit_key IS NOT NULL) AS q),
           (SELECT array_agg(k.id) FROM killed k)
    INTO v_requeued, v_killed, v_queues, v_dead;
    IF v_queues IS NOT NULL THEN
        PERFORM pg_notify({channel}, q) FROM unnest(v_queues) AS q;
    END IF;
    IF v_dead IS NOT NULL AND EXISTS (SELECT 1 FROM {schema}.job_deps) THEN
        PERFORM {schema}.settle_dependants(v_dead, array_fill(true, ARRAY[cardinality(v_dead)]));
    END IF;
    RETURN v_requeued + v_killed;
END
$$;

-- As in 002, with a second step for limited jobs. The first step is 002's
-- statement unchanged (on jobs_claim, which now holds the unlimited jobs
-- only), and all a queue without ready limited jobs pays more is one probe of
-- the empty jobs_claim_limited. With some, the claim visits each key that has
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
-- enqueue commits.
CREATE OR REPLACE FUNCTION {schema}.claim(
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
    IF EXISTS (SELECT 1 FROM {schema}.jobs e WHERE e.state = 2 AND e.lease_until <= now()) THEN
        PERFORM {schema}.recover_expired(p_err_head, p_err_mid, p_err_tail, 1000);
    END IF;
    IF EXISTS (SELECT 1 FROM {schema}.jobs d WHERE d.state IN (0, 4) AND d.run_at <= now()) THEN
        PERFORM {schema}.promote_due(10000);
    END IF;
    FOREACH v_queue IN ARRAY p_queues LOOP
        IF NOT EXISTS (SELECT 1 FROM {schema}.jobs l
                       WHERE l.state = 1 AND l.limit_key IS NOT NULL AND l.queue = v_queue) THEN
            WITH claimed AS (
                UPDATE {schema}.jobs j
                SET state = 2, attempt = j.attempt + 1, token = j.token + 1,
                    started_at = now(), lease_until = v_until
                WHERE j.ctid = ANY (ARRAY(
                    SELECT c.ctid FROM {schema}.jobs c
                    WHERE c.state = 1 AND c.limit_key IS NULL AND c.queue = v_queue
                    ORDER BY c.priority DESC, c.seq
                    LIMIT v_left
                    FOR NO KEY UPDATE SKIP LOCKED))
                RETURNING j.id, j.token, j.attempt, j.body, j.priority, j.seq
            )
            SELECT array_agg(c.id ORDER BY c.priority DESC, c.seq),
                   array_agg(c.token ORDER BY c.priority DESC, c.seq),
                   array_agg(c.attempt ORDER BY c.priority DESC, c.seq),
                   array_agg(c.body ORDER BY c.priority DESC, c.seq),
                   count(*)
            INTO v_ids, v_tokens, v_attempts, v_bodies, v_got
            FROM claimed c;
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
                     WHERE f.state = 1 AND f.limit_key IS NOT NULL AND f.queue = v_queue
                     ORDER BY f.limit_key LIMIT 1)
                    UNION ALL
                    SELECT (SELECT f.limit_key FROM {schema}.jobs f
                            WHERE f.state = 1 AND f.limit_key IS NOT NULL AND f.queue = v_queue
                              AND f.limit_key > k.key
                            ORDER BY f.limit_key LIMIT 1)
                    FROM k WHERE k.key IS NOT NULL
                )
                SELECT k.key FROM k
                CROSS JOIN LATERAL (
                    SELECT h.priority, h.seq FROM {schema}.jobs h
                    WHERE h.state = 1 AND h.limit_key = k.key AND h.queue = v_queue
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
                        WHERE a.state = 2 AND a.limit_key = v_key AND a.queue = v_queue)::integer);
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
                      WHERE c.state = 1 AND c.limit_key = v_key AND c.queue = v_queue
                      ORDER BY c.priority DESC, c.seq
                      LIMIT v_allow
                      FOR NO KEY UPDATE SKIP LOCKED) AS c;
            END LOOP;
            WITH plain AS (
                SELECT c.ctid AS tid, c.priority, c.seq FROM {schema}.jobs c
                WHERE c.state = 1 AND c.limit_key IS NULL AND c.queue = v_queue
                ORDER BY c.priority DESC, c.seq
                LIMIT v_left
                FOR NO KEY UPDATE SKIP LOCKED
            ), claimed AS (
                UPDATE {schema}.jobs j
                SET state = 2, attempt = j.attempt + 1, token = j.token + 1,
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
                RETURNING j.id, j.token, j.attempt, j.body, j.priority, j.seq, j.limit_key, j.started_at
            ), logged AS (
                INSERT INTO {schema}.limit_log (queue, key, leased_at)
                SELECT v_queue, c.limit_key, c.started_at
                FROM claimed c JOIN unnest(v_lkeys, v_lrated) AS k(key, rated) ON k.key = c.limit_key
                WHERE k.rated
            )
            SELECT array_agg(c.id ORDER BY c.priority DESC, c.seq),
                   array_agg(c.token ORDER BY c.priority DESC, c.seq),
                   array_agg(c.attempt ORDER BY c.priority DESC, c.seq),
                   array_agg(c.body ORDER BY c.priority DESC, c.seq),
                   count(*)
            INTO v_ids, v_tokens, v_attempts, v_bodies, v_got
            FROM claimed c;
        END IF;
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

-- As in 002, plus: finished jobs (succeeded, dead) settle their dependants,
-- and a limited job leaving active wakes its queue. The dependency and limit
-- columns follow the job to finished_jobs.
-- ack first finds its batch's rows by primary key inside a LATERAL
-- subquery (FOR UPDATE), then changes them by ctid (a TID scan per row):
-- nothing else can drive those joins. Written as a plain join of the batch
-- to jobs, the planner could walk the whole table
-- for each batch row instead; it did, once autovacuum analyzed the table
-- while it was empty but still had pages (density 0: it then believes jobs
-- holds one row, whatever its size): 9 to 46 s per ack of 1,000 in the
-- benchmark. The lock makes a concurrent renewal (a new row version) wait
-- and be re-checked, not make the ack miss its row.
CREATE OR REPLACE FUNCTION {schema}.ack(
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
    v_ids     text[];
    v_limited text[];
    v_done    text[] := '{}';
    v_failed  boolean[] := '{}';
    v_wake    text[] := '{}';
    v_tids    tid[];
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
    -- Each ack's row, found by primary key and locked (NULL: not active with
    -- that token); the statements below change rows by these ctids.
    SELECT array_agg(t.tid ORDER BY a.ord) INTO v_tids
    FROM unnest(p_ids, p_tokens) WITH ORDINALITY AS a(id, token, ord)
    LEFT JOIN LATERAL (
        SELECT j.ctid AS tid FROM {schema}.jobs j
        WHERE j.id = a.id AND j.token = a.token AND (j.state + 0) = 2
        FOR UPDATE
    ) t ON true;
    IF 0 = ANY (p_kinds) THEN
        IF p_keep_results THEN
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
                INSERT INTO {schema}.finished_jobs
                    (id, queue, state, priority, attempt, max_attempts, token, enqueued_at, run_at,
                     started_at, finished_at, unique_key, unique_ttl, unique_until, body, result, errors, progress,
                     parents, dep_mode, pending_parents, failed_parents, limit_key)
                SELECT d.id, d.queue, 3, d.priority, d.attempt, d.max_attempts, d.token, d.enqueued_at,
                       d.run_at, d.started_at, v_now, d.unique_key, d.unique_ttl,
                       CASE WHEN d.unique_ttl > 0 AND d.unique_key IS NOT NULL
                            THEN v_now + d.unique_ttl * interval '1 second' END,
                       d.body, d.payload, d.errors, d.progress,
                       d.parents, d.dep_mode, d.pending_parents, d.failed_parents, d.limit_key
                FROM done d
            )
            SELECT array_agg(done.ord::integer), array_agg(done.id), array_agg(DISTINCT done.queue) FILTER (WHERE done.limit_key IS NOT NULL)
            INTO v_part, v_ids, v_limited FROM done;
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
                INSERT INTO {schema}.finished_jobs
                    (id, queue, state, priority, attempt, max_attempts, token, enqueued_at, run_at,
                     started_at, finished_at, unique_key, unique_ttl, unique_until, body, result, errors, progress,
                     parents, dep_mode, pending_parents, failed_parents, limit_key)
                SELECT d.id, d.queue, 3, d.priority, d.attempt, d.max_attempts, d.token, d.enqueued_at,
                       d.run_at, d.started_at, v_now, d.unique_key, d.unique_ttl,
                       v_now + d.unique_ttl * interval '1 second', d.body, NULL, d.errors, d.progress,
                       d.parents, d.dep_mode, d.pending_parents, d.failed_parents, d.limit_key
                FROM done d
                WHERE d.unique_ttl > 0 AND d.unique_key IS NOT NULL
            )
            SELECT array_agg(done.ord::integer), array_agg(done.id), array_agg(DISTINCT done.queue) FILTER (WHERE done.limit_key IS NOT NULL)
            INTO v_part, v_ids, v_limited FROM done;
        END IF;
        v_applied := v_applied || coalesce(v_part, '{}');
        v_done := coalesce(v_ids, '{}');
        v_failed := array_fill(false, ARRAY[cardinality(v_done)]);
        v_wake := coalesce(v_limited, '{}');
    END IF;

    IF 1 = ANY (p_kinds) THEN
        -- A retry goes to the end of the FIFO (a new seq), like a fresh push.
        WITH a AS (
            SELECT * FROM unnest(p_ids, p_tokens, v_tids, p_kinds, p_payloads, p_delays) WITH ORDINALITY
                AS a(id, token, tid, kind, payload, delay, ord)
            WHERE a.kind = 1 AND a.tid IS NOT NULL
        ), retried AS (
            UPDATE {schema}.jobs j
            SET state = CASE WHEN a.delay > 0 THEN 4 ELSE 1 END,
                run_at = CASE WHEN a.delay > 0 THEN v_now + a.delay * interval '1 second' ELSE v_now END,
                errors = CASE WHEN a.payload IS NULL THEN j.errors ELSE array_append(j.errors, a.payload) END,
                lease_until = NULL,
                seq = nextval('{schema}.job_seq')
            FROM a
            WHERE j.ctid = a.tid
            RETURNING a.ord, j.queue
        )
        SELECT array_agg(retried.ord::integer), array_agg(DISTINCT retried.queue)
        INTO v_part, v_queues FROM retried;
        v_applied := v_applied || coalesce(v_part, '{}');
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
            INSERT INTO {schema}.finished_jobs
                (id, queue, state, priority, attempt, max_attempts, token, enqueued_at, run_at,
                 started_at, finished_at, unique_key, unique_ttl, unique_until, body, result, errors, progress,
                     parents, dep_mode, pending_parents, failed_parents, limit_key)
            SELECT d.id, d.queue, 5, d.priority, d.attempt, d.max_attempts, d.token, d.enqueued_at,
                   d.run_at, d.started_at, v_now, d.unique_key, d.unique_ttl, NULL, d.body, NULL,
                   CASE WHEN d.payload IS NULL THEN d.errors ELSE array_append(d.errors, d.payload) END,
                   d.progress, d.parents, d.dep_mode, d.pending_parents, d.failed_parents, d.limit_key
            FROM done d
        )
        SELECT array_agg(done.ord::integer), array_agg(done.id), array_agg(DISTINCT done.queue) FILTER (WHERE done.limit_key IS NOT NULL)
            INTO v_part, v_ids, v_limited FROM done;
        v_applied := v_applied || coalesce(v_part, '{}');
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
            SET state = 1, attempt = j.attempt - 1, lease_until = NULL,
                seq = nextval('{schema}.job_seq')
            FROM a
            WHERE j.ctid = a.tid
            RETURNING a.ord, j.queue
        )
        SELECT array_agg(released.ord::integer), coalesce(v_queues, '{}') || array_agg(DISTINCT released.queue)
        INTO v_part, v_queues FROM released;
        v_applied := v_applied || coalesce(v_part, '{}');
    END IF;

    -- A limited job that left active frees a slot of its key: wake its queue.
    v_queues := coalesce(v_queues, '{}') || v_wake;
    IF cardinality(v_queues) > 0 THEN
        PERFORM pg_notify({channel}, q) FROM (SELECT DISTINCT unnest(v_queues) AS q) AS woken WHERE q IS NOT NULL;
    END IF;
    -- A statement after the DELETEs above: see settle_dependants.
    IF cardinality(v_done) > 0 AND EXISTS (SELECT 1 FROM {schema}.job_deps) THEN
        PERFORM {schema}.settle_dependants(v_done, v_failed);
    END IF;
    RETURN v_applied;
END
$$;

-- renew, as ack above: the batch's rows found by primary key and locked in a
-- LATERAL subquery, then updated by ctid, so no statistics can make the
-- planner walk the whole table once per renewal.
CREATE OR REPLACE FUNCTION {schema}.renew(p_ids text[], p_tokens bigint[], p_seconds double precision[])
RETURNS integer[] LANGUAGE plpgsql
SET enable_seqscan = off SET enable_bitmapscan = off
SET enable_hashjoin = off SET enable_mergejoin = off AS $$
DECLARE
    v_renewed integer[];
BEGIN
    WITH l AS (
        SELECT * FROM unnest(p_ids, p_tokens, p_seconds) WITH ORDINALITY AS l(id, token, seconds, ord)
    ), h AS (
        SELECT l.*, t.tid FROM l CROSS JOIN LATERAL (
            SELECT j.ctid AS tid FROM {schema}.jobs j
            WHERE j.id = l.id AND j.token = l.token AND (j.state + 0) = 2
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
