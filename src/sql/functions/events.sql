-- fastjobs PostgreSQL functions: job lifecycle events. Placeholders, planning
-- pins and re-application: see claim.sql.
--
-- Publish one statement's events on the schema's events channel ({events}),
-- delivered at commit (a rolled-back statement publishes nothing). Kinds are
-- positions in fastjobs.backends.values.EVENT_KINDS (0 enqueued, 1 started,
-- 2 progress, 3 succeeded, 4 failed, 5 dead, 6 released, 7 cancelled,
-- 8 deleted). One NOTIFY per statement, not per job: the payload is the JSON
-- text [at, [kind, id, task, queue], ...] with at the server's now() in epoch
-- seconds, cut into chunks of at most about 6,000 bytes (PostgreSQL refuses
-- payloads of 8,000 bytes and more). An event whose own text exceeds 1,900
-- bytes (ids, tasks and queues are short; this only guards the limit) is
-- left out: events are best effort, and the statement must not fail for them.
--
-- Every NOTIFY takes PostgreSQL's global notification queue lock at commit,
-- which serializes the commits of all sessions that notify (through their WAL
-- flushes): the reason for one per statement, and for publishing nothing while
-- no session listens (event_listeners: see migration 003). The callers call
-- this only when the backend publishes events (BackendOptions.events; their
-- p_events argument).
CREATE OR REPLACE FUNCTION {schema}.publish(p_kinds smallint[], p_ids text[], p_tasks text[], p_queues text[])
RETURNS void LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_at text := date_part('epoch', now())::text;
BEGIN
    IF coalesce(cardinality(p_ids), 0) = 0 OR NOT EXISTS (SELECT 1 FROM {schema}.event_listeners) THEN
        RETURN;
    END IF;
    PERFORM pg_notify({events}, '[' || v_at || ',' || string_agg(e.item, ',' ORDER BY e.ord) || ']')
    FROM (
        SELECT x.ord, x.item, sum(octet_length(x.item) + 1) OVER (ORDER BY x.ord) / 6000 AS chunk
        FROM (
            SELECT u.ord, json_build_array(u.kind, u.id, u.task, u.queue)::text AS item
            FROM unnest(p_kinds, p_ids, p_tasks, p_queues) WITH ORDINALITY AS u(kind, id, task, queue, ord)
        ) AS x
        WHERE octet_length(x.item) <= 1900
    ) AS e
    GROUP BY e.chunk;
END
$$;

-- The same events of one kind.
CREATE OR REPLACE FUNCTION {schema}.publish(p_kind smallint, p_ids text[], p_tasks text[], p_queues text[])
RETURNS void LANGUAGE sql AS $$
    SELECT {schema}.publish(array_fill(p_kind, ARRAY[coalesce(cardinality(p_ids), 0)]), p_ids, p_tasks, p_queues)
$$;
