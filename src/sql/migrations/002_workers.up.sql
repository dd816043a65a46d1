-- fastjobs PostgreSQL schema, version 2: the live worker registry.
--
-- One row per worker process: written at its start (register_worker), updated
-- by the beat that rides on its lease renewals (renew, ../functions/ack.sql),
-- deleted when it stops. A worker whose beats stop (killed, stalled, cut off)
-- stays listed as gone until GONE_KEPT (an hour) after its ttl ran out; the
-- next registration of any worker deletes it then, so the table stays as small
-- as the fleet. Times are the server's now().
CREATE TABLE {schema}.workers (
    id text COLLATE "C" PRIMARY KEY,
    hostname text NOT NULL,
    pid integer NOT NULL,
    queues text[] NOT NULL,
    concurrency integer NOT NULL,
    version text NOT NULL,
    started_at timestamptz NOT NULL,
    last_seen timestamptz NOT NULL,
    ttl double precision NOT NULL,
    running text[] NOT NULL DEFAULT '{}'
);
