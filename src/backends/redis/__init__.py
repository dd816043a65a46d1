"""The Redis backend: ``redis://``, ``rediss://`` (TLS) and ``unix://`` URLs, standalone or Cluster.

Many worker processes on many hosts share queues through one Redis (or one
Redis Cluster; Redis 6.2 or later). Every state change is one atomic Lua
script from ``fastjobs/lua/<op>-<numkeys>.lua`` (each opens with a header
listing its KEYS, ARGV and return values), loaded once at connect (on Redis 7
outside Cluster as one function library, called with FCALL; elsewhere with
EVALSHA: :mod:`.scripts`) and loaded again if the server lost it. Claims, acks, renewals and enqueues
are batches: one script call per batch, one round trip; a batch travels as
one msgpack argument per queue.

Why the data is laid out as it is (the full layout is in ``lua/_common.lua``):

* Every key of a queue is ``<prefix>:{<queue>}:...``: the hash tag puts a queue
  in one Cluster slot, so each script touches one slot and queues spread over
  the cluster. Outside Cluster a script may take the key groups of several
  queues at once (a multi-queue claim, ack or enqueue is still one call).
* Redis time per job is what bounds every worker sharing a server, so the
  scripts do per-job work only where they must: a job is a record string plus
  a body string, read and written a batch at a time (MGET/MSET) rather than a
  hash per job with several calls each; ready jobs wait in one LIST per
  priority (RPUSH/LPOP, FIFO by a per-queue sequence number), and only jobs
  back from a delay, which keep their original position, go through a small
  ZSET merged in at claim; a claim leases its jobs as one batch (one ZSET
  entry and a count) instead of one ZSET entry per job. Measured in
  claim/ack cycles of 100 jobs, that is a third less Redis time per job than
  per-job hashes and ZSETs.
* Time is Redis ``TIME``, read inside each script; a worker's clock is never used.
* Finished jobs are deleted past their retention by the ack script itself, a
  bounded amount per call from the front of the time-ordered retention
  indexes, so memory stays bounded even if :meth:`cleanup` never runs (a key
  expiry per job would cost one more Redis call per job).

Finding a job by id alone (``get``, ``retry_jobs``, ``cancel_jobs``, ``delete_jobs``): a per-prefix
registry SET (``<prefix>:queues``) lists every queue ever enqueued to, and the
job is looked up in each queue's slot (one script call outside Cluster, one
concurrent call per queue in Cluster). An id -> queue index was the
alternative; it would be one more key per job to write at enqueue, delete at
finish and keep consistent across slots, on the hot path, to speed up calls
that are not. Acks and renewals need no lookup: the backend remembers the
queue of each job it claimed.

Pausing: a per-queue ``paused`` key in the queue's own slot, checked by the
claim script itself, so a pause holds atomically in Cluster without a
cross-slot read; ``paused()`` finds the flags through the queue registry (a
pause registers its queue first). The idle-wait script ignores ready jobs of
a paused queue, and resume wakes the idle workers.

Progress: ``set_progress`` is one script call that checks the lease token and
writes a ``p:<id>`` key beside the job's other keys (the job record is not
rewritten after the first report; a flag in it tells the succeeded retention
index to delete the key). The worker that claimed the job knows its queue,
so the call costs one round trip; any other caller looks the job up.

Uniqueness windows (``NewJob.unique_ttl``): the ``unique`` HASH keeps naming
a succeeded job while its window runs; the window's end (Redis time) is a
score in the queue's ``uniqueheld`` ZSET, checked by the enqueue script under
the same atomicity as the live-job check. The seconds travel with the job in
a ``u:<id>`` key, written only for jobs that have a window, so a job revived
from the dead-letter queue keeps its window; dead and cancelled jobs release
the key at once. Ended windows are freed by the ack script as new ones begin
and by :meth:`cleanup`, so the hash stays bounded.

Dependencies (``NewJob.depends_on``): a parent must be in its dependant's
queue, so the counts, the dependant lists and the state changes they cause
stay in one slot and one script: the dependant is stored ``waiting`` (a
``waiting`` ZSET, its counts in ``d:<id>``) and listed in ``c:<parent>`` of
each parent still running. The script that finishes a job (ack, lease
recovery in claim and recover, cancel) settles its dependants in the same
call, cascading through the ones it cancels; a record flag says a job has
dependants, so a plain job's finish looks for none. A released dependant keeps
the position its enqueue gave it (through the ``ready`` ZSET, as a job back
from a delay). A parent not in the queue is refused with
:class:`~fastjobs.DependencyError`; only then is it looked up elsewhere, to
say "queue" rather than "unknown".

Limits (``NewJob.limit``) are counted per (queue, key) by the claim script:
active count in ``lactive``, a per-key lease log ZSET for the sliding rate
window (Redis time). Limited jobs travel the ready structures like any other
(so plain jobs cost nothing more); one that claim meets over its key's limit
is parked, with its position, in the key's ``lq:<key>`` ZSET, and the claim
goes on with the next entries, so a saturated key never blocks its queue and
is not walked again. ``limitwait`` lists the keys with parked jobs, scored by
when they may go again (the window's next opening, or when an active job of
the key leaves: its ack, cancel or lease recovery makes the key due and wakes
the idle workers); claim first moves as many parked jobs as the key has room
for back into ``ready``. The idle-wait script counts a parked key only by that
time, so a worker does not spin on held jobs.

Search, history and events (details in :mod:`.jobs`): every queue keeps a
``live`` ZSET (not-finished jobs by enqueue time) beside the ``done``,
``dead`` and ``cancelled`` ZSETs (by finish time), written in the same
scripts that move the jobs, and a page seeks them by position in O(log N).
A job's task and tags sit in a small ``t:<id>`` key written with its record.
History rows ride in the ack call; events are one PUBLISH per script call and
queue, and only when someone listens.

Optional features stay off the hot path: an enqueue batch names them in one
trailing argument only when some job has them, and claim and ack test a
record flag that is empty for a plain job.

Idle workers block on a per-queue wake-up LIST (``BLPOP``) on a connection of
their own, not the shared pool; enqueues, requeues and retries push a token.
The BLPOP is pipelined behind a small script that reports whether a job is
ready and when the next delayed job or lease falls due; a local timer ends the
wait at that moment with ``CLIENT UNBLOCK`` (Redis' own BLPOP timeout is only
as precise as its ``hz``, 100 ms by default).

A reply lost to a broken connection: redis-py retries the call on a new
connection (with backoff), and enqueue and ack calls carry a nonce, so the
retry finds its own work done and answers as the first call did. A retried
claim leases new jobs; the first claim's jobs come back when their lease
expires, as a crashed worker's do.

Differences from the memory backend, all forced by Cluster slots: a
``unique_key`` is unique per queue; a job id is checked for duplicates within
its queue; in Cluster, ``enqueue_many`` is atomic per queue, not across queues.

The package, one concern per module (module imports run top to bottom, no cycles):

* :mod:`.scripts`: the Lua scripts, assembled with the generated state prelude, loaded, called (FCALL or EVALSHA);
* :mod:`.keys`: the key layout of a queue, grouped as each script takes it;
* :mod:`.records`: the job record string read into named fields, and into a StoredJob;
* :mod:`.wakeup`: the blocking wake-up of idle workers;
* :mod:`.connection`: the client, and the fan-out of script calls over queues and Cluster slots;
* :mod:`.jobs`: the operations layer: search (its indexes and what it seeks on), acting on jobs by
  id, history and events;
* :mod:`.backend`: :class:`RedisBackend`, the Backend contract's operations.

Example:
    >>> import fastjobs
    >>> app = fastjobs.App("redis://localhost:6379/0", prefix="myapp")  # doctest: +SKIP
"""

from __future__ import annotations

from .backend import RedisBackend
from .scripts import SCRIPTS, Script, load_scripts

__all__ = ["RedisBackend", "SCRIPTS", "Script", "load_scripts"]
