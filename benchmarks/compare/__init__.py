"""``python -m benchmarks --compare``: fastjobs and its peers (Celery, Dramatiq, RQ, arq, SAQ, Huey on
Redis; PgQueuer, procrastinate, SAQ on PostgreSQL) on the same no-op workload, on this machine.

For each library: N jobs enqueued with its fastest documented enqueue API, then ONE worker
process (its own CLI, in its own virtualenv) drains them; then N more are enqueued while that
worker runs (end to end). Every job body appends one fixed-size record to one file
(:mod:`~benchmarks.compare.records`), which is how completion is detected for every library
alike, and at the end each job must appear exactly once.

Modules: :mod:`.cli` (arguments, table), :mod:`.harness` (one run), :mod:`.peers` (the
libraries, pins and configurations), :mod:`.venvs` (their virtualenvs), :mod:`.servers`
(their space on Redis and PostgreSQL), :mod:`.records` (completion and the exactly-once
check), :mod:`.produce` and :mod:`.apps` (what runs inside each library's interpreter).

Example::

    python -m benchmarks --compare                                  # all peers, both servers
    python -m benchmarks --compare --backend redis --peers dramatiq,rq --jobs 500

This package is imported by the peers' worker processes too: standard library only here.
"""
