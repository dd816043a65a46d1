-- fastjobs PostgreSQL functions: job lifecycle events. Placeholders, planning
-- pins and re-application: see claim.sql.
--
-- Publish one statement's events: one row of the events table (migration
-- 004), visible to the listeners once the statement's transaction commits (a
-- rolled-back statement publishes nothing). Kinds are positions in
-- fastjobs.backends.values.EVENT_KINDS (0 enqueued, 1 started, 2 progress,
-- 3 succeeded, 4 failed, 5 dead, 6 released, 7 cancelled, 8 deleted). The
-- payload is the JSON text [at, [kind, id, task, queue], ...] with at the
-- server's now() in epoch seconds. An event whose own text exceeds 1,900 bytes
-- (ids, tasks and queues are short; this only guards the row) is left out:
-- events are best effort, and the statement must not fail for them.
--
-- Nothing is written while no session listens (event_listeners: see migration
-- 003); the callers call this only when the backend publishes events
-- (BackendOptions.events; their p_events argument).
CREATE OR REPLACE FUNCTION {schema}.publish(p_kinds smallint[], p_ids text[], p_tasks text[], p_queues text[])
RETURNS void LANGUAGE plpgsql
{PLANNING_PINS} AS $$
BEGIN
    IF coalesce(cardinality(p_ids), 0) = 0 OR NOT EXISTS (SELECT 1 FROM {schema}.event_listeners) THEN
        RETURN;
    END IF;
    INSERT INTO {schema}.events (payload)
    SELECT '[' || date_part('epoch', now())::text || ',' || string_agg(x.item, ',' ORDER BY x.ord) || ']'
    FROM (
        SELECT u.ord, json_build_array(u.kind, u.id, u.task, u.queue)::text AS item
        FROM unnest(p_kinds, p_ids, p_tasks, p_queues) WITH ORDINALITY AS u(kind, id, task, queue, ord)
    ) AS x
    WHERE octet_length(x.item) <= 1900
    HAVING count(*) > 0;
END
$$;

-- The same events of one kind.
CREATE OR REPLACE FUNCTION {schema}.publish(p_kind smallint, p_ids text[], p_tasks text[], p_queues text[])
RETURNS void LANGUAGE sql AS $$
    SELECT {schema}.publish(array_fill(p_kind, ARRAY[coalesce(cardinality(p_ids), 0)]), p_ids, p_tasks, p_queues)
$$;
