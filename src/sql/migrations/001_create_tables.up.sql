-- fastjobs PostgreSQL schema, version 1 (the baseline): the tables and their
-- indexes. Migrations hold table, index and type changes only; the functions
-- live in ../functions/ and are re-applied whenever they change (see
-- fastjobs.backends.postgres.schema).
--
-- {schema} is replaced by the quoted schema name (a validated identifier), and
-- {QUEUED} and the other state names by the fastjobs._core constants; the
-- runner applies this file inside a transaction under an advisory lock.
--
-- Live jobs (scheduled, queued, active, retry_pending, waiting) stay in `jobs`,
-- the hot table; finished ones (succeeded, dead, cancelled) move to
-- `finished_jobs` at their ack. The hot table and its partial indexes therefore
-- only ever hold work that can still run, however many results are kept around.
-- A waiting job's parents are not all finished: it is never claimed, and moves
-- to queued / scheduled, or to cancelled, when its last parent finishes.
--
-- Text keys (ids, queue names, unique keys) use the "C" collation: they are
-- identifiers, not prose, and byte-wise comparison keeps every index look-up
-- cheap whatever the database's locale (strcoll showed up in claim profiles).
--
-- A job without parents and without a limit leaves the dependency and limit
-- columns NULL (no bytes beyond the null bitmap), and the plain claim's index
-- holds such jobs only.

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
    parents         text[]   COLLATE "C",  -- depends_on as enqueued; NULL: none
    dep_mode        smallint,              -- DependencyMode (0 succeeded, 1 finished, 2 failed)
    pending_parents integer,               -- parents not finished yet (the last value once released)
    failed_parents  integer,               -- parents that ended dead or cancelled
    limit_key       text     COLLATE "C",  -- NewJob.limit.key; the key's settings are in limit_keys
    CONSTRAINT jobs_pkey PRIMARY KEY (id),
    CONSTRAINT jobs_live_state CHECK (state IN ({SCHEDULED}, {QUEUED}, {ACTIVE}, {RETRY_PENDING}, {WAITING}))
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

-- Promotion of scheduled and retry-pending jobs whose time has come.
CREATE INDEX jobs_due ON {schema}.jobs (run_at) WHERE state IN ({SCHEDULED}, {RETRY_PENDING});
-- An idle worker's "when does the next delayed job of my queues fall due": one
-- descent per queue. On jobs_due alone, min(run_at) of some queues walks past
-- the delayed jobs of every other queue.
CREATE INDEX jobs_due_by_queue ON {schema}.jobs (queue, run_at) WHERE state IN ({SCHEDULED}, {RETRY_PENDING});
-- Recovery of expired leases.
CREATE INDEX jobs_lease ON {schema}.jobs (lease_until) WHERE state = {ACTIVE};
-- Uniqueness: every row here is live, so a partial unique index is the rule
-- for live jobs ("not enqueued while another live job of its queue holds the
-- key"). A succeeded job with a unique_ttl holds its key a while longer from
-- finished_jobs (unique_until, below); enqueue_unique checks both, and the
-- wait this index imposes on an insert racing the holder's ack is what makes
-- that check see the hold (see enqueue_unique).
CREATE UNIQUE INDEX jobs_unique_key ON {schema}.jobs (queue, unique_key) WHERE unique_key IS NOT NULL;
-- The claim: ready jobs of one queue, highest priority first, then FIFO. The
-- plain claim leaves limited jobs alone: it may lease them only after the
-- key's counts were checked under the key's lock (claim's second step).
CREATE INDEX jobs_claim ON {schema}.jobs (queue, priority DESC, seq) WHERE state = {QUEUED} AND limit_key IS NULL;
-- Claim's second step: the keys with ready jobs in a queue (a skip scan over
-- the key column), and inside a key its jobs in claim order.
CREATE INDEX jobs_claim_limited ON {schema}.jobs (queue, limit_key, priority DESC, seq)
    WHERE state = {QUEUED} AND limit_key IS NOT NULL;
-- A key's active count, counted live under the key's lock (no counter to drift).
CREATE INDEX jobs_limit_active ON {schema}.jobs (queue, limit_key) WHERE state = {ACTIVE} AND limit_key IS NOT NULL;

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
    parents         text[]   COLLATE "C",
    dep_mode        smallint,
    pending_parents integer,
    failed_parents  integer,
    limit_key       text     COLLATE "C",
    CONSTRAINT finished_jobs_pkey PRIMARY KEY (id),
    CONSTRAINT finished_jobs_state CHECK (state IN ({SUCCEEDED}, {DEAD}, {CANCELLED}))
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
