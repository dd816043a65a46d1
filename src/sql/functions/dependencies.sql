-- fastjobs PostgreSQL functions: dependencies (a waiting job's release or
-- cancellation when its parents finish). Placeholders, planning pins and
-- re-application: see claim.sql.

-- Take waiting children whose counts are settled out of waiting: released to
-- queued, or scheduled for their own delay counted from the release (a
-- waiting job's run_at - enqueued_at is its delay), keeping their seq, so
-- their enqueue position, like a delayed job; or cancelled per their mode.
-- Returns the ids it cancelled (the caller settles their own dependants).
-- Released queues are notified like an enqueue (at commit).
CREATE OR REPLACE FUNCTION {schema}.resolve_waiting(p_children text[]) RETURNS text[] LANGUAGE plpgsql
{PLANNING_PINS} AS $$
DECLARE
    v_queues    text[];
    v_cancelled text[];
BEGIN
    WITH released AS (
        UPDATE {schema}.jobs j
        SET state = CASE WHEN j.run_at > j.enqueued_at THEN {SCHEDULED} ELSE {QUEUED} END,
            run_at = now() + (j.run_at - j.enqueued_at)
        WHERE j.id = ANY (p_children) AND j.state = {WAITING} AND j.pending_parents <= 0
          AND NOT (j.dep_mode = 0 AND j.failed_parents > 0)
          AND NOT (j.dep_mode = 2 AND j.failed_parents = 0)
        RETURNING j.queue
    )
    SELECT array_agg(DISTINCT released.queue) INTO v_queues FROM released;
    IF v_queues IS NOT NULL THEN
        PERFORM pg_notify({channel}, q) FROM unnest(v_queues) AS q;
    END IF;
    -- SUCCEEDED: one failed parent is enough, no need to wait for the others.
    WITH cancelled AS (
        DELETE FROM {schema}.jobs j
        WHERE j.id = ANY (p_children) AND j.state = {WAITING}
          AND ((j.dep_mode = 0 AND j.failed_parents > 0)
               OR (j.dep_mode = 2 AND j.pending_parents <= 0 AND j.failed_parents = 0))
        RETURNING j.*
    ), kept AS (
        {KEEP_CANCELLED}
    )
    SELECT array_agg(cancelled.id) INTO v_cancelled FROM cancelled;
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
-- p_events: publish a cancelled event for every dependant it cancels.
-- (settle_dependants, its name before the events, stays in schemas created
-- earlier for the functions of older processes.)
CREATE OR REPLACE FUNCTION {schema}.settle(p_ids text[], p_failed boolean[], p_events boolean)
RETURNS void LANGUAGE plpgsql
{PLANNING_PINS} AS $$
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
        PERFORM 1 FROM {schema}.jobs j WHERE j.id = ANY (v_children) AND j.state = {WAITING} ORDER BY j.id FOR NO KEY UPDATE;
        UPDATE {schema}.jobs j
        SET pending_parents = j.pending_parents - c.n, failed_parents = j.failed_parents + c.nf
        FROM unnest(v_children, v_counts, v_fails) AS c(child, n, nf)
        WHERE j.id = c.child AND j.state = {WAITING};
        p_ids := {schema}.resolve_waiting(v_children);
        p_failed := array_fill(true, ARRAY[cardinality(p_ids)]);
        IF p_events AND cardinality(p_ids) > 0 THEN
            PERFORM {schema}.publish(7::smallint, array_agg(f.id), array_agg(f.task), array_agg(f.queue))
            FROM {schema}.finished_jobs f WHERE f.id = ANY (p_ids);
        END IF;
    END LOOP;
END
$$;
