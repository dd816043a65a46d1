"""``python -m benchmarks.redis_floor``: how far fastjobs' Redis scripts are from the floor.

Starts a private ``redis-server`` (``--save "" --appendonly no``, a free port) and
moves N no-op jobs through enqueue, claim and ack (SUCCEED, result kept) four ways,
measuring the server's cost per job of each stage:

* ``fastjobs``: the real scripts through the backend (``benchmarks.redis_scripts``:
  ``App.enqueue_many``, ``backend.claim``, ``backend.ack_many`` with a history row);
* ``lua-keys``: fastjobs' keys and indexes, no logic: minimal Lua scripts that
  issue exactly the Redis commands fastjobs' enqueue-6, claim-12 and ack-10 issue
  for these jobs (checked against ``MONITOR``: the same commands, with the same
  numbers of arguments, on the same keys), on records of the text layout
  fastjobs stored before its layout 1 (binary: lua/_common.lua) and of its
  length (69 / 107 / 119 bytes; layout 1: 89 / 89 / 97) built by concatenation,
  the fields carried over cut at fixed offsets (never a pattern), and bodies
  as ``lua-min``'s. Per job:
  j:, b:, t:, ``live``, the ready list (members <seq><id>), the lease batch and
  ``done``; per call: EXISTS of the new records, TIME, INCRBY / INCR seq, the
  events check (PUBSUB NUMPAT / NUMSUB), ``prio``, the wake tokens, the queue
  registry, claim's maintenance reads (leases, sched, retry, limitwait, paused,
  ready), ack's history row (minute and hour) and ``done`` trim read. Left out:
  fastjobs' argument decoding (cmsgpack), the fencing beyond the state byte,
  and every branch the no-op case does not take. The floor of the current
  storage design: what any script keeping these keys pays;
* ``lua-min``: minimal Lua scripts that issue only the Redis commands the same
  state transitions need, on the same key layout, with a tiny fixed record and no
  parsing: enqueue = MSET record + body, RPUSH to the ready list, ZADD to the
  live index; claim = LPOP, MGET records + bodies, MSET the rewritten records,
  the lease batch (RPUSH its ids, HSET its count, ZADD its deadline); ack = MGET
  the records (the fencing read), MSET the finished records, ZADD to the
  retention index, ZREM from the live index, HINCRBY the lease batch's count.
  Left out: the task/tags key, events, history, maintenance (recovery,
  promotion), dependencies, limits, unique keys. ``lua-min same-body`` stores
  one identical body for every job; ``lua-min`` stores bodies shaped as
  fastjobs encodes them (same length, the job id at the same offset), so the
  difference between the two is what Lua's string interning of per-job
  strings that collide in its hash costs (see below);
* ``pipeline``: the same commands as ``lua-min`` sent by the client as one
  pipeline per batch, no Lua and not atomic (the client names the keys it
  knows it will pop): a lower bound for any design that keeps the same state.

Figures per stage: ``us`` the server's CPU microseconds per job (``INFO cpu``:
user + sys; the median over ``--rounds`` rounds, which alternate the variants),
``bound`` = 1e6 / us, the jobs/s the server's one thread allows that stage, and
with ``--callgrind`` a second pass under ``valgrind --tool=callgrind`` (fewer
jobs) gives ``instr``, the server's instructions per job, which do not drift
with the machine's load. The closing rows add the stages up: drain = claim + ack
and end to end = enqueue + claim + ack, as the jobs/s their server cost allows.

Why interning shows up at all: Lua 5.1 (Redis' Lua) interns every string it
makes, and before Redis 7.0 hashes a string of length l from only every
((l >> 5) + 1)-th byte counting back from the last. Job records and bodies of
one batch differ only in a few digits, so when those digits are not sampled all
of a batch's strings land in one hash chain, and each new one is compared with
all the others. Redis 7.0 hashes every byte (redis/redis#9449): on 7.x the two
``lua-min`` rows agree, on 6.2 they differ by ~6k instructions per job.

What it showed (2026-12-07, this 2-core VM, Redis 7.0.15, 100,000 jobs, batches
1000/500/500; server CPU us per job enqueue / claim / ack, and the jobs/s the
server allows drain = claim + ack and end to end = all three):
fastjobs 10.5 / 5.45 / 5.45 (drain 91.7k, end to end 46.7k); lua-min 4.5 / 2.6 /
2.9 (183k, 100k); pipeline 3.9 / 1.8 / 2.25 (247k, 126k). Instructions per job:
fastjobs 60.8k / 45.3k / 42.6k, lua-min 25.1k / 19.6k / 19.1k, pipeline 14.6k /
8.7k / 12.9k. Of fastjobs' extra ~26k per job per script, parsing the record
with a Lua pattern is ~12k (Lua's matcher costs ~100 instructions per
character of a ~110-byte record; a plain string.find per field costs more), and
each call spends ~120k-200k instructions before its first job (defining the
shared helpers: closures whose upvalues are searched in a list, and their
garbage), ~250-400 per job at batches of 500.

``lua-keys`` (added later the same day, 20,000 jobs under callgrind, 7.0.15):
38.2k / 30.3k / 28.6k instructions per job (fastjobs 60.8k / 45.7k / 42.8k,
lua-min 25.0k / 19.5k / 19.1k), i.e. 97k end to end against fastjobs' 149k and
lua-min's 64k: two thirds of fastjobs' instructions are the storage design
itself, one third (~52k per job) its logic. In CPU time (two runs on a busy
machine, 100,000 jobs) lua-keys cost 0.74 and 0.73 of fastjobs (enqueue 0.79-0.80,
more than its instructions' 0.63: new keys likely cost in memory, not instructions):
scaled to fastjobs' quiet 21.4 us above, the design's floor is ~15.7 us end to
end (~64k jobs/s), so issue 17's 60k (16.7 us) leaves all of its logic ~1 us per
job. Removing one piece at a time from lua-keys (instructions per job, enqueue /
claim / ack): records of 5 bytes instead of fastjobs' ~110 save 1.9k / 6.6k /
7.7k; the t: key 4.8k at enqueue; EXISTS 0.9k; the history row, claim's
maintenance reads and the other per-call commands under 0.3k each.

``--server`` must name the binary itself under ``--callgrind`` (not a pyenv shim,
which valgrind would not follow); a build with symbols (not Debian's stripped one)
lets ``callgrind_annotate`` name the Lua functions in the dumps kept with
``--callgrind-dir``.

Examples::

    python -m benchmarks.redis_floor --jobs 100000 --rounds 3
    python -m benchmarks.redis_floor --jobs 100000 --callgrind --callgrind-jobs 20000
    python -m benchmarks.redis_floor --server /usr/bin/redis-server --json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from typing import Any

import redis

from fastjobs.job import new_job_ids

from . import redis_scripts

STAGES = ("enqueue", "claim", "ack")
VARIANTS = ("fastjobs", "lua-keys", "lua-min same-body", "lua-min", "pipeline")

# The floor's records: fixed and tiny, never parsed (state|attempt|token).
QUEUED_RECORD, ACTIVE_RECORD, DONE_RECORD = "1|0|0", "2|1|1", "3|1|1"

ENQUEUE_LUA = """
local base, rec = ARGV[1], ARGV[2]
local n = (#ARGV - 3) / 2
local now = ARGV[3]
local writes, members, live = {}, {}, {}
for i = 1, n do
  local id, body = ARGV[2 + 2 * i], ARGV[3 + 2 * i]
  writes[4 * i - 3], writes[4 * i - 2] = base .. 'j:' .. id, rec
  writes[4 * i - 1], writes[4 * i] = base .. 'b:' .. id, body
  members[i] = id
  live[2 * i - 1], live[2 * i] = now, id
end
redis.call('MSET', unpack(writes))
redis.call('RPUSH', base .. 'rl:0', unpack(members))
redis.call('ZADD', base .. 'live', unpack(live))
return n
"""

CLAIM_LUA = """
local base, n, rec, deadline = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local ids = redis.call('LPOP', base .. 'rl:0', n)
if not ids then return {} end
local keys = {}
for i = 1, #ids do
  keys[2 * i - 1] = base .. 'j:' .. ids[i]
  keys[2 * i] = base .. 'b:' .. ids[i]
end
local values = redis.call('MGET', unpack(keys))
local batch = redis.call('INCR', base .. 'seq')
local writes, out = {}, {}
for i = 1, #ids do
  writes[2 * i - 1], writes[2 * i] = keys[2 * i - 1], rec
  out[2 * i - 1], out[2 * i] = ids[i], values[2 * i]
end
redis.call('MSET', unpack(writes))
redis.call('RPUSH', base .. 'lease:' .. batch, unpack(ids))
redis.call('HSET', base .. 'leasecount', batch, #ids)
redis.call('ZADD', base .. 'leases', deadline, batch)
return out
"""

ACK_LUA = """
local base, rec, now, batch = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = #ARGV - 4
local keys, ids = {}, {}
for i = 1, n do
  ids[i] = ARGV[4 + i]
  keys[i] = base .. 'j:' .. ids[i]
end
local records = redis.call('MGET', unpack(keys))
local writes, done = {}, {}
for i = 1, n do
  if records[i] then
    writes[#writes + 1] = keys[i]
    writes[#writes + 1] = rec
    done[#done + 1] = now
    done[#done + 1] = ids[i]
  end
end
redis.call('MSET', unpack(writes))
redis.call('ZADD', base .. 'done', unpack(done))
redis.call('ZREM', base .. 'live', unpack(ids))
if redis.call('HINCRBY', base .. 'leasecount', batch, -n) <= 0 then
  redis.call('HDEL', base .. 'leasecount', batch)
  redis.call('ZREM', base .. 'leases', batch)
  redis.call('DEL', base .. 'lease:' .. batch)
end
return n
"""

# lua-keys: fastjobs' keys, indexes and per-call commands in the common case
# (plain job, no events heard, no unique key, result_ttl > 0, a history row per
# ack call), with records of fastjobs' layout and length, built by concatenation
# (the fields carried over are cut at fixed offsets, never matched).
KEYS_PRELUDE = """
local SEQ_HIGH, SEQ_LOW = {}, {}
local function fmt_seq(seq)
  local low = seq % 100
  local high = (seq - low) / 100
  local hs, ls = SEQ_HIGH[high], SEQ_LOW[low]
  if not hs then hs = string.format('%014d', high); SEQ_HIGH[high] = hs end
  if not ls then ls = string.format('%02d', low); SEQ_LOW[low] = ls end
  return hs .. ls
end
local function now_time()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end
local function heard(prefix)
  return redis.call('PUBSUB', 'NUMPAT') > 0 or redis.call('PUBSUB', 'NUMSUB', prefix .. 'events:bench')[2] > 0
end
"""

ENQUEUE_KEYS_LUA = KEYS_PRELUDE + """
local prefix, base, nonce, meta = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local n = (#ARGV - 4) / 2
local keys = {}
for i = 1, n do keys[i] = base .. 'j:' .. ARGV[3 + 2 * i] end
if redis.call('EXISTS', unpack(keys)) > 0 then return redis.error_reply('FJDUPLICATE') end
local now = now_time()
local nows = string.format('%.6f', now)
local first = redis.call('INCRBY', base .. 'seq', n) - n
heard(prefix)
local head = '|' .. nows .. '||||' .. nonce .. '|||||'
local writes, live, members = {}, {}, {}
for i = 1, n do
  local id = ARGV[3 + 2 * i]
  local seq = fmt_seq(first + i)
  writes[6 * i - 5], writes[6 * i - 4] = keys[i], '1|0|3|0|0|' .. seq .. head
  writes[6 * i - 3], writes[6 * i - 2] = base .. 'b:' .. id, ARGV[4 + 2 * i]
  writes[6 * i - 1], writes[6 * i] = base .. 't:' .. id, meta
  live[2 * i - 1], live[2 * i] = nows, id
  members[i] = seq .. id
end
for i = 1, #writes, 4000 do redis.call('MSET', unpack(writes, i, math.min(i + 3999, #writes))) end
redis.call('ZADD', base .. 'live', unpack(live))
redis.call('RPUSH', base .. 'rl:0', unpack(members))
redis.call('ZADD', base .. 'prio', '0', '0')
local tokens = {}
for i = 1, math.min(n, 8) do tokens[i] = '1' end
redis.call('LPUSH', base .. 'wake', unpack(tokens))
redis.call('LTRIM', base .. 'wake', '0', '7')
redis.call('SADD', prefix .. 'queues', 'bench')
return {}
"""

CLAIM_KEYS_LUA = KEYS_PRELUDE + """
local prefix, base, want, lease = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4])
local now = now_time()
local nows = string.format('%.6f', now)
local deadline = string.format('%.6f', now + lease)
local cut = string.format('%.17g', now)
redis.call('ZRANGEBYSCORE', base .. 'leases', '-inf', cut, 'LIMIT', '0', '20')
redis.call('ZRANGEBYSCORE', base .. 'sched', '-inf', cut, 'LIMIT', '0', '1000')
redis.call('ZRANGEBYSCORE', base .. 'retry', '-inf', cut, 'LIMIT', '0', '1000')
redis.call('ZRANGEBYSCORE', base .. 'limitwait', '-inf', cut, 'LIMIT', '0', '100')
redis.call('EXISTS', base .. 'paused')
redis.call('ZRANGE', base .. 'prio', '0', '0', 'WITHSCORES')
redis.call('ZRANGE', base .. 'ready', '0', '0', 'WITHSCORES')
local members = redis.call('LPOP', base .. 'rl:0', ARGV[3]) or {}
local n = #members
if n < want then redis.call('ZREM', base .. 'prio', '0') end
local ids, keys = {}, {}
for i = 1, n do
  local id = string.sub(members[i], 17)
  ids[i] = id
  keys[2 * i - 1] = base .. 'j:' .. id
  keys[2 * i] = base .. 'b:' .. id
end
local values = n > 0 and redis.call('MGET', unpack(keys)) or {}
heard(prefix)
local out = {0, 0}
if n > 0 then
  local batch = string.format('%d', redis.call('INCR', base .. 'seq'))
  out[1] = batch
  local mid = '||' .. deadline .. '|' .. batch .. '||'
  local writes = {}
  for i = 1, n do
    local rec = values[2 * i - 1]
    writes[2 * i - 1] = keys[2 * i - 1]
    writes[2 * i] = '2|1|3|1|0|' .. string.sub(rec, 11, 46) .. nows .. '||' .. string.sub(rec, 49, 64) .. mid
    out[4 * i - 1], out[4 * i], out[4 * i + 1], out[4 * i + 2] = ids[i], 1, 1, values[2 * i]
  end
  redis.call('RPUSH', base .. 'lease:' .. batch, unpack(ids))
  redis.call('HSET', base .. 'leasecount', batch, string.format('%d', n))
  redis.call('ZADD', base .. 'leases', deadline, batch)
  redis.call('MSET', unpack(writes))
end
if n < want then redis.call('DEL', base .. 'wake') end
return out
"""

ACK_KEYS_LUA = KEYS_PRELUDE + """
local prefix, base, call_nonce, batch, result_ttl = ARGV[1], ARGV[2], ARGV[3], ARGV[4], tonumber(ARGV[5])
local n = #ARGV - 5
local now = now_time()
local nows = string.format('%.6f', now)
for _, s in ipairs({{'m', 60, 86400}, {'h', 3600, 2592000}}) do
  local index = prefix .. '{~history}:' .. s[1]
  local starts = string.format('%d', now - now % s[2])
  local key = index .. ':' .. starts
  if redis.call('ZADD', index, 'NX', starts, starts) == 1 then
    redis.call('ZRANGEBYSCORE', index, '-inf', '(' .. string.format('%d', now - s[3]), 'LIMIT', 0, 20)
  end
  redis.call('HINCRBY', key, 'bench\\tnoop\\t0\\tn', n)
  redis.call('HINCRBYFLOAT', key, 'bench\\tnoop\\t0\\ts', '0.0001')
  redis.call('HINCRBY', key, 'bench\\tnoop\\t0\\tb0', n)
end
local keys, ids = {}, {}
for i = 1, n do
  ids[i] = ARGV[5 + i]
  keys[i] = base .. 'j:' .. ids[i]
end
local records = redis.call('MGET', unpack(keys))
heard(prefix)
local tail = '|' .. call_nonce .. '||||'
local writes, done, gone = {}, {}, {}
for i = 1, n do
  local rec = records[i]
  if rec and string.byte(rec, 1) == 50 then
    writes[#writes + 1] = keys[i]
    writes[#writes + 1] = '3|1|3|1|0|' .. string.sub(rec, 11, 64) .. nows .. '|' .. string.sub(rec, 66, 81) .. tail
    done[#done + 1] = nows
    done[#done + 1] = ids[i]
    gone[#gone + 1] = ids[i]
  end
end
redis.call('MSET', unpack(writes))
if redis.call('HINCRBY', base .. 'leasecount', batch, string.format('%d', -#gone)) <= 0 then
  redis.call('HDEL', base .. 'leasecount', batch)
  redis.call('ZREM', base .. 'leases', batch)
  redis.call('DEL', base .. 'lease:' .. batch)
end
redis.call('ZREM', base .. 'live', unpack(gone))
redis.call('ZADD', base .. 'done', unpack(done))
redis.call('ZRANGEBYSCORE', base .. 'done', '-inf', '(' .. string.format('%.17g', now - result_ttl), 'LIMIT', '0', string.format('%d', #gone + 100))
return #gone
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """A private redis-server, optionally under callgrind (instructions counted, dumped per stage)."""

    def __init__(self, binary: str, callgrind_dir: str | None) -> None:
        self.port = free_port()
        self.callgrind_dir = callgrind_dir
        command = [binary, "--port", str(self.port), "--save", "", "--appendonly", "no", "--bind", "127.0.0.1"]
        if callgrind_dir:
            command = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={callgrind_dir}/out.%p"] + command
        self.process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.client = redis.Redis(port=self.port)
        for _ in range(600):
            try:
                self.client.ping()
                break
            except redis.ConnectionError:
                time.sleep(0.1)
        else:
            self.stop()
            raise RuntimeError(f"{binary} did not start on port {self.port}")
        self.version = self.client.info("server")["redis_version"]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def cpu(self) -> float:
        info = self.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    def instructions(self) -> int:
        """Instructions since the previous call (callgrind dump), or 0 when not under callgrind."""
        if not self.callgrind_dir:
            return 0
        return redis_scripts.dump_total(self.process.pid, self.callgrind_dir)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def body_shape(server: Server) -> tuple[bytes, bytes]:
    """The bytes around the job id in a body as fastjobs encodes it (one real enqueue)."""
    import fastjobs

    async def one() -> None:
        app = fastjobs.App(server.url, prefix="floorshape", result_ttl=3600)

        @app.task(name="noop", queue="bench")
        async def noop() -> None:
            return None

        await app.enqueue_many([noop.call()])
        await app.close()

    asyncio.run(one())
    key = next(iter(server.client.scan_iter("floorshape:[{]bench[}]:b:*")))
    job_id = key.rsplit(b":", 1)[1]
    body = server.client.get(key)
    assert body is not None and job_id in body, "could not read a stored body"
    head, _, tail = body.partition(job_id)
    for key in server.client.scan_iter("floorshape:*"):
        server.client.delete(key)
    return head, tail


def run_floor(server: Server, jobs: int, enqueue_batch: int, claim_batch: int, ack_batch: int,
              mode: str, shape: tuple[bytes, bytes]) -> dict[str, dict[str, float]]:
    """One pass of a floor variant: mode 'keys', 'lua', 'lua-same' or 'pipeline'."""
    c = server.client
    prefix = f"floor{os.urandom(4).hex()}:"
    base = prefix + "{bench}:"
    ids = new_job_ids(jobs)
    head, tail = shape
    same = head + b"0" * 32 + tail

    def body(job_id: str) -> bytes:
        return same if mode == "lua-same" else head + job_id.encode() + tail

    scripts = (ENQUEUE_KEYS_LUA, CLAIM_KEYS_LUA, ACK_KEYS_LUA) if mode == "keys" else (ENQUEUE_LUA, CLAIM_LUA, ACK_LUA)
    enqueue_sha, claim_sha, ack_sha = (c.script_load(s) for s in scripts)
    batches: list[tuple[str, list[str]]] = []

    def enqueue() -> None:
        for i in range(0, jobs, enqueue_batch):
            part = ids[i:i + enqueue_batch]
            now = f"{time.time():.6f}"
            if mode == "pipeline":
                writes: list[Any] = []
                live: list[Any] = []
                for job_id in part:
                    writes += [base + "j:" + job_id, QUEUED_RECORD, base + "b:" + job_id, body(job_id)]
                    live += [now, job_id]
                with c.pipeline(transaction=False) as pipe:
                    pipe.execute_command("MSET", *writes)
                    pipe.execute_command("RPUSH", base + "rl:0", *part)
                    pipe.execute_command("ZADD", base + "live", *live)
                    pipe.execute()
            elif mode == "keys":
                kargs: list[Any] = [prefix, base, os.urandom(8).hex(), "noop"]
                for job_id in part:
                    kargs += [job_id, body(job_id)]
                c.evalsha(enqueue_sha, 0, *kargs)
            else:
                args: list[Any] = [base, QUEUED_RECORD, now]
                for job_id in part:
                    args += [job_id, body(job_id)]
                c.evalsha(enqueue_sha, 0, *args)

    def claim() -> None:
        done = 0
        while done < jobs:
            n = min(claim_batch, jobs - done)
            deadline = f"{time.time() + 60:.6f}"
            if mode == "pipeline":
                part = ids[done:done + n]
                batch = c.incr(base + "seq")
                keys: list[str] = []
                writes: list[Any] = []
                for job_id in part:
                    keys += [base + "j:" + job_id, base + "b:" + job_id]
                    writes += [base + "j:" + job_id, ACTIVE_RECORD]
                with c.pipeline(transaction=False) as pipe:
                    pipe.execute_command("LPOP", base + "rl:0", n)
                    pipe.execute_command("MGET", *keys)
                    pipe.execute_command("MSET", *writes)
                    pipe.execute_command("RPUSH", base + f"lease:{batch}", *part)
                    pipe.execute_command("HSET", base + "leasecount", batch, n)
                    pipe.execute_command("ZADD", base + "leases", deadline, batch)
                    popped = pipe.execute()[0]
                batches.append((str(batch), [x.decode() for x in popped]))
            elif mode == "keys":
                out = c.evalsha(claim_sha, 0, prefix, base, n, 60)
                batches.append((out[0].decode(), [out[i].decode() for i in range(2, len(out), 4)]))
                n = (len(out) - 2) // 4
            else:
                out = c.evalsha(claim_sha, 0, base, n, ACTIVE_RECORD, deadline)
                batch = c.get(base + "seq").decode()
                batches.append((batch, [out[i].decode() for i in range(0, len(out), 2)]))
                n = len(out) // 2
            if not n:
                raise RuntimeError(f"claimed {done} of {jobs}")
            done += n

    def ack() -> None:
        for batch, part in batches:
            for i in range(0, len(part), ack_batch):
                chunk = part[i:i + ack_batch]
                now = f"{time.time():.6f}"
                if mode == "pipeline":
                    writes: list[Any] = []
                    doneadd: list[Any] = []
                    for job_id in chunk:
                        writes += [base + "j:" + job_id, DONE_RECORD]
                        doneadd += [now, job_id]
                    with c.pipeline(transaction=False) as pipe:
                        pipe.execute_command("MGET", *[base + "j:" + job_id for job_id in chunk])
                        pipe.execute_command("MSET", *writes)
                        pipe.execute_command("ZADD", base + "done", *doneadd)
                        pipe.execute_command("ZREM", base + "live", *chunk)
                        pipe.execute_command("HINCRBY", base + "leasecount", batch, -len(chunk))
                        left = pipe.execute()[-1]
                    if left <= 0:
                        with c.pipeline(transaction=False) as pipe:
                            pipe.execute_command("HDEL", base + "leasecount", batch)
                            pipe.execute_command("ZREM", base + "leases", batch)
                            pipe.execute_command("DEL", base + f"lease:{batch}")
                            pipe.execute()
                elif mode == "keys":
                    c.evalsha(ack_sha, 0, prefix, base, os.urandom(8).hex(), batch, 3600, *chunk)
                else:
                    c.evalsha(ack_sha, 0, base, DONE_RECORD, now, batch, *chunk)

    out = measure(server, jobs, (("enqueue", enqueue), ("claim", claim), ("ack", ack)))
    for key in c.scan_iter(prefix + "*", count=1000):
        c.unlink(key)
    return out


def measure(server: Server, jobs: int, stages: Any) -> dict[str, dict[str, float]]:
    server.instructions()
    out: dict[str, dict[str, float]] = {}
    for name, stage in stages:
        cpu = server.cpu()
        stage()
        cpu = server.cpu() - cpu
        out[name] = {"us": cpu / jobs * 1e6}
        if server.callgrind_dir:
            out[name]["instr"] = server.instructions() / jobs
    return out


def run_fastjobs(server: Server, jobs: int, enqueue_batch: int, claim_batch: int, ack_batch: int) -> dict[str, dict[str, float]]:
    pid = server.process.pid if server.callgrind_dir else None
    got = asyncio.run(redis_scripts.run(jobs, enqueue_batch, claim_batch, ack_batch, True, pid,
                                        server.callgrind_dir or "/tmp", url=server.url))
    return {stage: {"us": f["server_us"], **({"instr": f["server_instr"]} if "server_instr" in f else {})}
            for stage, f in got.items()}


def one_pass(server: Server, variant: str, jobs: int, batches: tuple[int, int, int],
             shape: tuple[bytes, bytes]) -> dict[str, dict[str, float]]:
    if variant == "fastjobs":
        return run_fastjobs(server, jobs, *batches)
    mode = {"lua-keys": "keys", "lua-min same-body": "lua-same", "lua-min": "lua", "pipeline": "pipeline"}[variant]
    return run_floor(server, jobs, *batches, mode, shape)


def collect(binary: str, callgrind_dir: str | None, jobs: int, rounds: int, batches: tuple[int, int, int],
            variants: tuple[str, ...], progress: Callable[[str], None]) -> tuple[str, dict[str, dict[str, dict[str, float]]]]:
    """Median per variant and stage over the rounds (variants alternate within each round)."""
    server = Server(binary, callgrind_dir)
    try:
        shape = body_shape(server)
        server.instructions()
        runs: dict[str, list[dict[str, dict[str, float]]]] = {v: [] for v in variants}
        for r in range(rounds):
            for variant in variants:
                runs[variant].append(one_pass(server, variant, jobs, batches, shape))
                progress(f"round {r + 1} {variant}: " + "  ".join(
                    f"{s} {runs[variant][-1][s]['us']:.2f} us" for s in STAGES))
        medians = {v: {s: {k: statistics.median(run[s][k] for run in rs) for k in rs[0][s]} for s in STAGES}
                   for v, rs in runs.items()}
        return server.version, medians
    finally:
        server.stop()


def with_totals(figures: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    out = dict(figures)
    for name, parts in (("drain", ("claim", "ack")), ("end to end", STAGES)):
        out[name] = {k: sum(figures[s][k] for s in parts) for k in figures["claim"]}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.redis_floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--enqueue-batch", type=int, default=1000)
    parser.add_argument("--claim-batch", type=int, default=500)
    parser.add_argument("--ack-batch", type=int, default=500)
    parser.add_argument("--server", default=shutil.which("redis-server") or "redis-server", help="redis-server binary")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="comma-separated, of: " + ", ".join(VARIANTS))
    parser.add_argument("--callgrind", action="store_true", help="also count instructions under callgrind (a second pass)")
    parser.add_argument("--callgrind-jobs", type=int, default=20_000)
    parser.add_argument("--callgrind-dir", default=None, help="keep callgrind's dumps there (one per stage, for callgrind_annotate)")
    parser.add_argument("--no-cpu", action="store_true", help="skip the CPU pass (with --callgrind: instructions only)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    variants = tuple(v.strip() for v in args.variants.split(","))
    unknown = set(variants) - set(VARIANTS)
    if unknown:
        parser.error(f"unknown variants {sorted(unknown)}")
    batches = (args.enqueue_batch, args.claim_batch, args.ack_batch)
    say = (lambda line: None) if args.json else (lambda line: print(line, flush=True))

    results: dict[str, dict[str, dict[str, float]]] = {v: {} for v in variants}
    version = ""
    if not args.no_cpu:
        version, cpu = collect(args.server, None, args.jobs, args.rounds, batches, variants, say)
        for v in variants:
            results[v] = {s: {"us": f["us"]} for s, f in cpu[v].items()}
    if args.callgrind:
        with tempfile.TemporaryDirectory(prefix="redis_floor_cg") as folder:
            if args.callgrind_dir:
                os.makedirs(args.callgrind_dir, exist_ok=True)
            version, counted = collect(args.server, args.callgrind_dir or folder, args.callgrind_jobs, 1, batches,
                                       variants, say)
        for v in variants:
            for s in STAGES:
                results[v].setdefault(s, {})["instr"] = counted[v][s]["instr"]
    results = {v: with_totals(f) for v, f in results.items()}
    if args.json:
        print(json.dumps({"redis_version": version, "jobs": args.jobs, "batches": batches, "variants": results}))
        return 0
    print(f"\nredis-server {version} ({args.server}), {args.jobs:,} jobs (CPU, median of {args.rounds})"
          + (f", {args.callgrind_jobs:,} under callgrind" if args.callgrind else "")
          + f"; batches: enqueue {batches[0]}, claim {batches[1]}, ack {batches[2]}")
    print("server cost per job: us = CPU microseconds, bound = 1e6 / us jobs/s, instr = instructions")
    print(f"{'variant':18} {'stage':11} {'us':>7} {'bound/s':>9} {'instr':>8}")
    for v in variants:
        for s, f in results[v].items():
            us, instr = f.get("us"), f.get("instr")
            print(f"{v:18} {s:11} " + (f"{us:7.2f} {1e6 / us:9,.0f}" if us else f"{'':7} {'':9}")
                  + (f" {instr:8,.0f}" if instr is not None else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
