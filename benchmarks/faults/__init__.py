"""fastjobs' own fault-injection suite: ``python -m benchmarks --faults``.

Ten scenarios, each run on Redis and on PostgreSQL, against throwaway servers
the suite starts itself (never the shared ones), through the public API and
real ``fastjobs worker`` processes, with every handler execution recorded in a
ledger outside the job store. One module per concern:

* :mod:`~benchmarks.faults.servers`: the private redis-server and PostgreSQL, and how to break them;
* :mod:`~benchmarks.faults.ledger`: the O_APPEND execution ledger and its tally (lost, duplicates, overlaps);
* :mod:`~benchmarks.faults.workerapp`: the App the workers run (crash points, clock skew);
* :mod:`~benchmarks.faults.fleet`: worker processes, signals, cleanup;
* :mod:`~benchmarks.faults.harness`: a scenario's namespace, producer and result row;
* :mod:`~benchmarks.faults.crashes` (1-4), :mod:`~benchmarks.faults.outages` (5-7),
  :mod:`~benchmarks.faults.damage` (8), :mod:`~benchmarks.faults.load` (9-10): the scenarios;
* :mod:`~benchmarks.faults.report`: the tables, the JSON and the exit status;
* :mod:`~benchmarks.faults.cli`: the command line.
"""
