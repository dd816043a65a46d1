-- fastjobs PostgreSQL schema, version 1: the tables and their indexes.
--
-- {schema} is replaced by the quoted schema name (a validated identifier); the
-- runner applies this file inside a transaction under an advisory lock.
--
-- Live jobs (scheduled, queued, active, retry_pending) stay in `jobs`, the hot
-- table; finished ones (succeeded, dead, cancelled) move to `finished_jobs` at
-- their ack. The hot table and its partial indexes therefore only ever hold
-- work that can still run, however many results are kept around.
--
-- Text keys (ids, queue names, unique keys) use the "C" collation: they are
-- identifiers, not prose, and byte-wise comparison keeps every index look-up
-- cheap whatever the database's locale (strcoll showed up in claim profiles).
--
-- States are the fastjobs._core constants: 0 scheduled, 1 queued, 2 active,
-- 3 succeeded, 4 retry_pending, 5 dead, 6 cancelled.

-- FIFO position inside a queue and priority. No CACHE: per-session cached
-- ranges would hand later enqueues on one connection smaller numbers than
-- earlier ones on another.
CREATE SEQUENCE {schema}.job_seq AS bigint;

CREATE TABLE {schema}.jobs (
    id           text        COLLATE "C" NOT NULL,
    queue        text        COLLATE "C" NOT NULL,
    state        smallint    NOT NULL,
    priority     bigint      NOT NULL,
    seq          bigint      NOT NULL,
    attempt      integer     NOT NULL DEFAULT 0,
    max_attempts integer     NOT NULL,
    token        bigint      NOT NULL DEFAULT 0,
    enqueued_at  timestamptz NOT NULL,
    run_at       timestamptz NOT NULL,
    started_at   timestamptz,
    lease_until  timestamptz,
    unique_key   text        COLLATE "C",
    unique_ttl   double precision,       -- seconds the key stays held after success; NULL: none
    body         bytea       NOT NULL,
    errors       bytea[],                -- one record per failed attempt; NULL until the first
    progress     bytea,                  -- the latest set_progress (msgpack); kept across attempts
    CONSTRAINT jobs_pkey PRIMARY KEY (id),
    CONSTRAINT jobs_live_state CHECK (state IN (0, 1, 2, 4))
) WITH (
    -- Every job is inserted, updated at claim and deleted at ack: the table
    -- churns through dead tuples, and its indexes stay fast only if vacuum
    -- keeps up, so vacuum it after a fixed number of dead rows, unthrottled
    -- (it is small when healthy).
    autovacuum_vacuum_scale_factor = 0.0,
    autovacuum_vacuum_threshold = 5000,
    autovacuum_vacuum_cost_delay = 0,
    autovacuum_analyze_scale_factor = 0.0,
    autovacuum_analyze_threshold = 20000
);

-- The claim: ready jobs of one queue, highest priority first, then FIFO.
CREATE INDEX jobs_claim ON {schema}.jobs (queue, priority DESC, seq) WHERE state = 1;
-- Promotion of scheduled and retry-pending jobs whose time has come.
CREATE INDEX jobs_due ON {schema}.jobs (run_at) WHERE state IN (0, 4);
-- An idle worker's "when does the next delayed job of my queues fall due": one
-- descent per queue. On jobs_due alone, min(run_at) of some queues walks past
-- the delayed jobs of every other queue.
CREATE INDEX jobs_due_by_queue ON {schema}.jobs (queue, run_at) WHERE state IN (0, 4);
-- Recovery of expired leases.
CREATE INDEX jobs_lease ON {schema}.jobs (lease_until) WHERE state = 2;
-- Uniqueness: every row here is live, so a partial unique index is the rule
-- for live jobs ("not enqueued while another live job of its queue holds the
-- key"). A succeeded job with a unique_ttl holds its key a while longer from
-- finished_jobs (unique_until, below); enqueue_unique checks both, and the
-- wait this index imposes on an insert racing the holder's ack is what makes
-- that check see the hold (see enqueue_unique).
CREATE UNIQUE INDEX jobs_unique_key ON {schema}.jobs (queue, unique_key) WHERE unique_key IS NOT NULL;

CREATE TABLE {schema}.finished_jobs (
    id           text        COLLATE "C" NOT NULL,
    queue        text        COLLATE "C" NOT NULL,
    state        smallint    NOT NULL,
    priority     bigint      NOT NULL,
    attempt      integer     NOT NULL,
    max_attempts integer     NOT NULL,
    token        bigint      NOT NULL,
    enqueued_at  timestamptz NOT NULL,
    run_at       timestamptz NOT NULL,
    started_at   timestamptz,
    finished_at  timestamptz NOT NULL,
    unique_key   text        COLLATE "C",
    unique_ttl   double precision,       -- kept for retry_dead
    unique_until timestamptz,            -- succeeded: its unique_key is held until then
    body         bytea       NOT NULL,
    result       bytea,
    errors       bytea[],                -- one record per failed attempt; NULL until the first
    progress     bytea,                  -- the last progress its worker reported
    CONSTRAINT finished_jobs_pkey PRIMARY KEY (id),
    CONSTRAINT finished_jobs_state CHECK (state IN (3, 5, 6))
);

-- Retention (cleanup), the dead-letter list and purge: by state, oldest first.
CREATE INDEX finished_jobs_state ON {schema}.finished_jobs (state, finished_at);
-- Unique keys held after success: the latest window of a (queue, key), found
-- with one descent. Expired windows stay until cleanup deletes their rows
-- (cleanup keeps a row while its window is open, whatever result_ttl says).
CREATE INDEX finished_jobs_unique_hold ON {schema}.finished_jobs (queue, unique_key, unique_until)
    WHERE unique_until IS NOT NULL;

-- Paused queues: claim leases nothing from them (their jobs stay queued, in
-- order); enqueues continue. A table, not process state, so that every worker
-- on the schema sees a pause at its next claim.
CREATE TABLE {schema}.paused_queues (
    queue     text        COLLATE "C" NOT NULL,
    paused_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT paused_queues_pkey PRIMARY KEY (queue)
);
