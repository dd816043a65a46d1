-- fastjobs PostgreSQL schema, version 3: the operations layer (search, history).
--
-- Every job carries its task's name and its tags, so search can filter on them
-- and events can name the task without decoding bodies. `task` is NOT NULL
-- with the empty string as its default and `tags` NULL for a job without tags
-- (no bytes beyond the null bitmap, as for the dependency columns): both are
-- catalog-only defaults, so this migration rewrites no table.
ALTER TABLE {schema}.jobs ADD COLUMN task text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE {schema}.jobs ADD COLUMN tags text[] COLLATE "C";
ALTER TABLE {schema}.finished_jobs ADD COLUMN task text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE {schema}.finished_jobs ADD COLUMN tags text[] COLLATE "C";

-- Search pages, newest first by (at, id), where at is finished_at here and
-- enqueued_at in jobs. A page with states (or none: one part per state) seeks
-- each state's part of one of these two indexes to its position and reads
-- `limit` entries; the parts are merged. The first also serves retention
-- (cleanup: by state, oldest first) and replaces the (state, finished_at)
-- index of version 1.
CREATE INDEX finished_jobs_search ON {schema}.finished_jobs (state, finished_at, id);
CREATE INDEX finished_jobs_search_queue ON {schema}.finished_jobs (queue, state, finished_at, id);
DROP INDEX {schema}.finished_jobs_state;

-- The same for live jobs, but for active ones: a partial index that a claim's
-- update (queued -> active) leaves alone, so the claim, the hottest statement,
-- pays nothing for search (an enqueue pays one entry per index). Active jobs
-- are as many as the workers run at once: search sorts them (through
-- jobs_lease) instead of seeking.
CREATE INDEX jobs_search ON {schema}.jobs (state, enqueued_at, id)
    WHERE state IN ({SCHEDULED}, {QUEUED}, {RETRY_PENDING}, {WAITING});
CREATE INDEX jobs_search_queue ON {schema}.jobs (queue, state, enqueued_at, id)
    WHERE state IN ({SCHEDULED}, {QUEUED}, {RETRY_PENDING}, {WAITING});

-- Throughput and run-time history: one row per (step, at, queue, task,
-- outcome, shard), step 60 (minute points) or 3600 (hour points), at the start
-- of the minute or hour on the server's clock. ack adds its batch's rows to
-- both (an upsert) and trims a bounded number of expired points per new point
-- it creates, so the table stays bounded without a sweeper. buckets: the
-- counts of the run-time histogram (HISTOGRAM_BOUNDS, one more for the rest).
-- shard: the writing session's server process id modulo 8. An upsert locks its
-- row until the ack commits, so every worker acking the same task would queue
-- its commits (and their WAL flushes) behind one row per point; eight rows
-- per point let eight sessions go at once, and a read sums them.
CREATE TABLE {schema}.history (
    step        integer          NOT NULL,
    at          timestamptz      NOT NULL,
    queue       text             COLLATE "C" NOT NULL,
    task        text             COLLATE "C" NOT NULL,
    outcome     smallint         NOT NULL,
    shard       smallint         NOT NULL,
    runs        bigint           NOT NULL,
    runtime_sum double precision NOT NULL,
    buckets     bigint[]         NOT NULL,
    CONSTRAINT history_pkey PRIMARY KEY (step, at, queue, task, outcome, shard)
);

-- The sessions LISTENing for events (Backend.events), by server process id.
-- Publishers NOTIFY only while a row is here: a NOTIFY takes a lock that
-- serializes the commits of every notifying transaction of the database
-- through their WAL flushes, which cut a four-connection claim/ack drain to
-- a third of its rate in a measurement. With nobody listening, events cost a
-- probe of this (empty) table. A listener adds its row after its LISTEN and
-- deletes it when it stops; rows of sessions that are gone (a killed process)
-- are deleted by the next listener to start and by cleanup.
CREATE TABLE {schema}.event_listeners (
    pid   integer     PRIMARY KEY,
    since timestamptz NOT NULL DEFAULT now()
);
