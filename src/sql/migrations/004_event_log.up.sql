-- Job lifecycle events through a table, not NOTIFY.
--
-- Version 3 published events with pg_notify, one per statement, while a
-- listener existed. A NOTIFY takes a database-wide lock at commit that
-- serializes every notifying transaction's commit (through its WAL flush):
-- with one dashboard open, the benchmark's end-to-end rate fell by a quarter.
-- Now each statement that moves jobs appends one row here (its events, the
-- same JSON text as the NOTIFY payload was), still only while someone listens
-- (event_listeners); each listener reads the rows after the last one it saw,
-- a few times a second, on its own connection. UNLOGGED: no WAL (events are
-- best effort; a crash empties the table), and an insert takes no lock that
-- other sessions wait for. Listeners delete rows older than a minute.
CREATE UNLOGGED TABLE {schema}.events (
    seq     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at      timestamptz NOT NULL DEFAULT now(),
    payload text        NOT NULL
);
-- A claim's or an ack's events are a few kB: stored out of line uncompressed
-- (compressing them would cost the publishing statement's CPU for nothing).
ALTER TABLE {schema}.events ALTER COLUMN payload SET STORAGE EXTERNAL;
