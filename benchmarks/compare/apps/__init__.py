"""One module per library: its app, the job body (:func:`~benchmarks.compare.records.append_record`)
and ``produce(first, count)``, which enqueues jobs ``first .. first + count - 1`` with the
library's fastest documented enqueue API and returns the wall-clock times of the first
enqueue and of the last one's return.

Each module is imported by the library's own worker process and by the producer
(:mod:`benchmarks.compare.produce`), in the library's virtualenv: it may import only the
library, the standard library and :mod:`benchmarks.compare.records`. The harness passes the
server and the records file in :data:`URL_ENV` and
:data:`~benchmarks.compare.records.RECORDS_ENV`.
"""

URL_ENV = "FASTJOBS_COMPARE_URL"
QUEUE = "compare"
