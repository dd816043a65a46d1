--[[
  Shared helpers, pasted at load time in place of the line `-- @include _common`
  at the top of every `<op>-<numkeys>.lua` script.

  Key layout. Every key of one queue shares the hash tag `{<queue>}`, so a
  script that touches one queue touches one Cluster slot:

    <prefix>:{<queue>}:prio       ZSET  the priorities that have a ready list (member and score: -priority)
    <prefix>:{<queue>}:rl:<p>     LIST  ready jobs of score p (= -priority), members <seq><job id>, FIFO
    <prefix>:{<queue>}:ready      ZSET  ready jobs that came back from a delay with their old
                                        position: score p, member <seq><job id>
    <prefix>:{<queue>}:sched      ZSET  scheduled jobs: score due time, member <seq><job id>
    <prefix>:{<queue>}:retry      ZSET  retry-pending jobs: idem
    <prefix>:{<queue>}:leases     ZSET  lease batches (one per claim or renewal call): member batch id,
                                        score its deadline
    <prefix>:{<queue>}:lease:<b>  LIST  the job ids leased by batch b
    <prefix>:{<queue>}:leasecount HASH  batch id -> how many of its jobs are still leased by it
    <prefix>:{<queue>}:succeeded  LIST  "<finish time>|<r: result><e: errors><p: progress>|<job id>", oldest
                                        first (retention index; the flags spare deleting absent keys)
    <prefix>:{<queue>}:cancelled  ZSET  score finish time, member job id (retention index)
    <prefix>:{<queue>}:dead       ZSET  idem: the dead-letter queue
    <prefix>:{<queue>}:ghosts     SET   members of ready lists whose job was cancelled (skipped at claim)
    <prefix>:{<queue>}:unique     HASH  unique key -> id of the live job holding it, or of the
                                        succeeded job whose uniqueness window holds it
    <prefix>:{<queue>}:uniqueheld ZSET  unique keys held by a succeeded job: score the end of its window
    <prefix>:{<queue>}:seq        STRING counter: enqueue order and lease batch ids
    <prefix>:{<queue>}:wake       LIST  wake-up tokens for idle workers (BLPOP), capped
    <prefix>:{<queue>}:paused     STRING exists while the queue is paused (claim leases nothing from it)
    <prefix>:{<queue>}:j:<id>     STRING the job record (below)
    <prefix>:{<queue>}:b:<id>     STRING the job body (written once, read at claim)
    <prefix>:{<queue>}:r:<id>     STRING the result, if any
    <prefix>:{<queue>}:e:<id>     LIST  encoded error records, oldest first
    <prefix>:{<queue>}:p:<id>     STRING the latest progress its handler reported (opaque bytes)
    <prefix>:{<queue>}:u:<id>     STRING unique_ttl (seconds) of a job with a unique key and a window

  Order. Ready jobs are served by priority, then by <seq>: a 16-digit
  per-queue sequence number given at every push into the ready state (enqueue,
  release, retry, lease recovery), which a delayed job keeps through its delay.
  A new seq is always the highest, so pushing it at the tail of its priority's
  LIST keeps that list sorted; only a job coming back from a delay carries an
  older seq, and it goes to the `ready` ZSET, which claim merges with the lists
  by (priority, seq). LISTs rather than one ZSET for everything: an enqueue and
  a claim cost an RPUSH and an LPOP per job instead of a skiplist insert and
  delete, about a fifth of the work of the whole job.

  Leases. A claim leases its jobs as one batch: one entry in `leases`, not one
  per job; the job record holds its deadline and batch. Acks only decrement the
  batch's count (and drop the batch at zero); recovery reads the expired
  batches and takes back the jobs still leased by them.

  The job record is one string, fields separated by '|', the unique key last
  (it may contain '|'):
    state|attempt|max_attempts|token|p|seq|enqueued_at|run_at|started_at|finished_at|nonce|ack_nonce|lease_until|lease_batch|flags|unique_key
  (p is -priority; run_at empty means enqueued_at; flags holds '1' once the
  error list exists and 'p' once the progress key does: '', '1', 'p' or '1p',
  so the succeeded retention index can say which keys to delete.)

  Why strings and not a hash per job: every per-job redis.call costs a few
  microseconds of Redis time on its own, so the batch scripts read and write
  the records of a whole batch with one MGET and one MSET. For the same reason
  finished jobs are deleted by trimming the retention indexes in the ack
  script itself (one DEL per batch), not by a key expiry per job: memory stays
  bounded without cleanup as long as jobs finish, and nothing grows when none do.

  Job keys are built here from the queue's base `<prefix>:{<queue>}:` (taken
  from a declared key): they hash to the same slot as the declared keys.
  Times are seconds since the epoch from Redis TIME, with 6 decimals.

  Batches arrive as one msgpack argument per queue (decoded with cmsgpack, C
  code) rather than as thousands of arguments: packing those dominated the
  client's time. Values written back are strings wherever possible: a Lua
  number handed to redis.call is formatted with "%.17g" on every call.
]]

-- States (fastjobs._core numbers), as stored: strings.
local SCHEDULED, QUEUED, ACTIVE, SUCCEEDED, RETRY_PENDING, DEAD, CANCELLED = '0', '1', '2', '3', '4', '5', '6'
-- Redis' Lua unpack() is limited by the C stack (~8000 values): send long
-- argument lists in chunks (an even size keeps ZADD/MSET pairs together).
local CHUNK = 4000
-- Work done per call on due delayed jobs and expired leases stays bounded;
-- the next call picks up the rest.
local MAINTENANCE_LIMIT = 1000
local LEASE_BATCH_LIMIT = 20
local WAKE_TOKENS = 8
-- Same text as fastjobs.job.lease_expired_error (a test checks they match).
local LEASE_EXPIRED_MESSAGE = "the job's lease expired before it was acknowledged (its worker died or stalled)"

local RECORD = '^(%d)|(%d*)|(%d*)|(%d*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|(.*)$'

-- state, attempt, max_attempts, token, p, seq, enqueued_at, run_at, started_at,
-- finished_at, nonce, ack_nonce, lease_until, lease_batch, has_errors, unique_key;
-- nil if unreadable.
local function parse(rec)
  if not rec then return nil end
  return string.match(rec, RECORD)
end

local function record(st, a, m, t, p, s, e, ra, sa, f, n, an, l, lb, x, u)
  return st .. '|' .. a .. '|' .. m .. '|' .. t .. '|' .. p .. '|' .. s .. '|' .. e .. '|' .. ra
    .. '|' .. sa .. '|' .. f .. '|' .. n .. '|' .. an .. '|' .. l .. '|' .. lb .. '|' .. x .. '|' .. u
end

local function now_time()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function fmt_time(t)
  return string.format('%.6f', t)
end

-- Formatting a number is one of the dearest things a script does per job
-- (snprintf: ~0.5-1.5 us), so the per-job ones are memoized per call:
-- attempts, tokens and max_attempts repeat, and consecutive sequence numbers
-- share all but their last two digits.
local INT_STRINGS, SEQ_HIGH, SEQ_LOW = {}, {}, {}

local function int_str(n)
  local s = INT_STRINGS[n]
  if not s then
    s = string.format('%d', n)
    INT_STRINGS[n] = s
  end
  return s
end

-- 16 digits, zero-padded: members of equal priority sort in seq order.
local function fmt_seq(seq)
  local low = seq % 100
  local high = (seq - low) / 100
  local hs, ls = SEQ_HIGH[high], SEQ_LOW[low]
  if not hs then
    hs = string.format('%014d', high)
    SEQ_HIGH[high] = hs
  end
  if not ls then
    ls = string.format('%02d', low)
    SEQ_LOW[low] = ls
  end
  return hs .. ls
end

-- The record flags with the error list's flag added (see the record layout).
local function with_errors(x)
  if x and string.find(x, 'p', 1, true) then return '1p' end
  return '1'
end

local function base_of(key)
  return string.match(key, '^(.*}:)')
end

-- `redis.call(cmd, key, unpack(args))`, chunked; args may be empty. key nil:
-- the command takes its keys in args (MSET, DEL).
local function call_chunked(cmd, key, args)
  local n = #args
  for i = 1, n, CHUNK do
    if key then
      redis.call(cmd, key, unpack(args, i, math.min(i + CHUNK - 1, n)))
    else
      redis.call(cmd, unpack(args, i, math.min(i + CHUNK - 1, n)))
    end
  end
end

-- MGET of many keys, chunked, as one array.
local function mget(keys)
  local n = #keys
  if n <= CHUNK then
    if n == 0 then return {} end
    return redis.call('MGET', unpack(keys))
  end
  local out = {}
  for i = 1, n, CHUNK do
    local part = redis.call('MGET', unpack(keys, i, math.min(i + CHUNK - 1, n)))
    for j = 1, #part do out[#out + 1] = part[j] end
  end
  return out
end

-- The keys of a job, to delete it.
local function add_job_keys(keys, base, id)
  keys[#keys + 1] = base .. 'j:' .. id
  keys[#keys + 1] = base .. 'b:' .. id
  keys[#keys + 1] = base .. 'r:' .. id
  keys[#keys + 1] = base .. 'e:' .. id
  keys[#keys + 1] = base .. 'p:' .. id
  keys[#keys + 1] = base .. 'u:' .. id
end

local function error_record(attempt, kind, message, at)
  return cmsgpack.pack({attempt = attempt, type = kind, message = message, traceback = '', at = at})
end

local function release_unique(unique, uk, id)
  if uk and uk ~= '' and redis.call('HGET', unique, uk) == id then
    redis.call('HDEL', unique, uk)
  end
end

-- Who holds unique key `uk` now: the holder's id, or false when free. A key
-- held by a succeeded job whose window ended is free, and forgotten here.
local function unique_holder(unique, held, uk, now)
  local holder = redis.call('HGET', unique, uk)
  if holder then
    local until_ = redis.call('ZSCORE', held, uk)
    if until_ and tonumber(until_) <= now then
      redis.call('ZREM', held, uk)
      redis.call('HDEL', unique, uk)
      return false
    end
  end
  return holder
end

-- A job with unique key `uk` succeeded: keep the key for its window (u:<id>
-- holds the seconds) or release it at once.
local function unique_succeeded(unique, held, base, uk, id, now)
  if uk == '' then return false end
  local ukey = base .. 'u:' .. id
  local ttl = tonumber(redis.call('GET', ukey))
  if ttl then redis.call('DEL', ukey) end
  if ttl and ttl > 0 and redis.call('HGET', unique, uk) == id then
    redis.call('ZADD', held, fmt_time(now + ttl), uk)
    return true
  end
  release_unique(unique, uk, id)
  return false
end

-- Free unique keys whose window ended (at most `limit`). Returns how many.
local function trim_unique_held(unique, held, now, limit)
  local done = redis.call('ZRANGEBYSCORE', held, '-inf', now, 'LIMIT', 0, limit)
  if #done == 0 then return 0 end
  -- A key in `held` is never held by a live job (taking it removes it
  -- from `held`), so it is the finished job's to free.
  call_chunked('HDEL', unique, done)
  call_chunked('ZREM', held, done)
  return #done
end

-- Ready pushes, gathered per priority: push(p, member) ... flush().
local function ready_pusher(prio, base)
  local lists, order = {}, {}
  local pusher = {}
  function pusher.push(p, member)
    local list = lists[p]
    if not list then
      list = {}
      lists[p] = list
      order[#order + 1] = p
    end
    list[#list + 1] = member
  end
  function pusher.flush()
    for i = 1, #order do
      local p = order[i]
      call_chunked('RPUSH', base .. 'rl:' .. p, lists[p])
      redis.call('ZADD', prio, p, p)
    end
    return #order
  end
  return pusher
end

-- Pop up to `want` ready members in order: priority first, then seq, merging
-- the priority lists with the `ready` ZSET of jobs back from a delay.
local function pop_ready(ready, prio, base, want)
  local out = {}
  while #out < want do
    local need = want - #out
    local top = redis.call('ZRANGE', prio, 0, 0, 'WITHSCORES')
    local head = redis.call('ZRANGE', ready, 0, 0, 'WITHSCORES')
    if #top == 0 and #head == 0 then break end
    local lp = #top > 0 and tonumber(top[2]) or nil
    local zp = #head > 0 and tonumber(head[2]) or nil
    if zp == nil or (lp ~= nil and lp < zp) then
      -- The whole list comes before the ZSET's head.
      local list = base .. 'rl:' .. top[1]
      local got = redis.call('LPOP', list, need)
      if not got then got = {} end
      for i = 1, #got do out[#out + 1] = got[i] end
      if #got < need then redis.call('ZREM', prio, top[1]) end
    elseif lp == nil or zp < lp then
      local got = redis.call('ZRANGEBYSCORE', ready, '-inf', lp and ('(' .. top[2]) or '+inf', 'LIMIT', 0, need)
      call_chunked('ZREM', ready, got)
      for i = 1, #got do out[#out + 1] = got[i] end
    else
      -- Same priority in both: merge by member (fixed-width seq first).
      local list = base .. 'rl:' .. top[1]
      local la = redis.call('LRANGE', list, 0, need - 1)
      local za = redis.call('ZRANGEBYSCORE', ready, top[2], top[2], 'LIMIT', 0, need)
      local i, j, taken = 1, 1, {}
      while #out < want and (i <= #la or j <= #za) do
        if j > #za or (i <= #la and la[i] < za[j]) then
          out[#out + 1] = la[i]
          i = i + 1
        else
          out[#out + 1] = za[j]
          taken[#taken + 1] = za[j]
          j = j + 1
        end
      end
      if i > 1 then redis.call('LTRIM', list, i - 1, -1) end
      if redis.call('EXISTS', list) == 0 then redis.call('ZREM', prio, top[1]) end
      call_chunked('ZREM', ready, taken)
    end
  end
  return out
end

-- Give up `count` jobs of lease batch `batch` (acked, cancelled, moved by a
-- renewal); the batch goes when none is left.
local function lease_release(leases, leasecount, base, batch, count)
  if not batch or batch == '' then return end
  if redis.call('HINCRBY', leasecount, batch, -count) <= 0 then
    redis.call('HDEL', leasecount, batch)
    redis.call('ZREM', leases, batch)
    redis.call('DEL', base .. 'lease:' .. batch)
  end
end

-- Open lease batch `batch` (a fresh id from the seq counter) for `ids`, until
-- `deadline` (a formatted time).
local function lease_open(leases, leasecount, base, batch, ids, deadline)
  call_chunked('RPUSH', base .. 'lease:' .. batch, ids)
  redis.call('HSET', leasecount, batch, #ids)
  redis.call('ZADD', leases, deadline, batch)
end

-- Dead-letter a job whose stored data is unusable (record missing or
-- unreadable, body missing), with a reason a person can read in the
-- dead-letter queue. `dead_keep` false: dead jobs are not kept (dead_ttl 0).
-- A readable record names the job's unique key, released like any dead
-- job's (else enqueue would answer this dead job's id for that key forever);
-- without one the key, if any, is unknown.
local function dead_letter_bad(base, id, dead, unique, reason, fields, now, nows, dead_keep)
  local a, m, t, p, s, e, n, x, u = '0', '0', '0', '0', '', nows, '', '', ''
  if fields then
    a, m, t, p, s, e, n, x, u = fields[2], fields[3], fields[4], fields[5], fields[6], fields[7], fields[11], fields[15], fields[16]
    release_unique(unique, u, id)
  end
  local ek = base .. 'e:' .. id
  local t_ek = redis.call('TYPE', ek)['ok']
  if t_ek ~= 'list' and t_ek ~= 'none' then redis.call('DEL', ek) end
  redis.call('RPUSH', ek, error_record(tonumber(a) or 0, 'CorruptJobError', reason, now))
  if dead_keep then
    redis.call('SET', base .. 'j:' .. id, record(DEAD, a, m, t, p, s, e, '', '', nows, n, '', '', '', with_errors(x), u))
    redis.call('ZADD', dead, nows, id)
  else
    local keys = {}
    add_job_keys(keys, base, id)
    redis.call('DEL', unpack(keys))
  end
end

-- Move due jobs of one delayed ZSET to the `ready` ZSET, keeping their member
-- (hence their position). Returns how many.
local function promote(ready, delayed, base, now)
  local due = redis.call('ZRANGEBYSCORE', delayed, '-inf', now, 'LIMIT', 0, MAINTENANCE_LIMIT)
  local n = #due
  if n == 0 then return 0 end
  local keys = {}
  for i = 1, n do keys[i] = base .. 'j:' .. string.sub(due[i], 17) end
  local records = mget(keys)
  local add, writes = {}, {}
  for i = 1, n do
    local st, a, m, t, p, s, e, ra, sa, f, nn, an, l, lb, x, u = parse(records[i])
    if st then
      writes[#writes + 1] = keys[i]
      writes[#writes + 1] = record(QUEUED, a, m, t, p, s, e, ra, sa, f, nn, an, l, lb, x, u)
    else
      p = '0'  -- claim dead-letters it with a reason
    end
    add[#add + 1] = tonumber(p) and p or '0'
    add[#add + 1] = due[i]
  end
  call_chunked('ZREM', delayed, due)
  call_chunked('ZADD', ready, add)
  call_chunked('MSET', nil, writes)
  return n
end

-- Take back the jobs of expired lease batches: back to their queue (new
-- position, like a fresh push), or dead when their attempts are used up; a
-- LeaseExpiredError record is appended either way. Returns how many jobs.
local function recover(prio, leases, leasecount, dead, unique, seqkey, base, now, nows, dead_keep)
  local batches = redis.call('ZRANGEBYSCORE', leases, '-inf', now, 'LIMIT', 0, LEASE_BATCH_LIMIT)
  if #batches == 0 then return 0 end
  local pusher = ready_pusher(prio, base)
  local dead_add, writes, doomed = {}, {}, {}
  local recovered = 0
  for b = 1, #batches do
    local batch = batches[b]
    local ids = redis.call('LRANGE', base .. 'lease:' .. batch, 0, -1)
    local keys = {}
    for i = 1, #ids do keys[i] = base .. 'j:' .. ids[i] end
    local records = mget(keys)
    for i = 1, #ids do
      local id = ids[i]
      local st, a, m, t, p, s, e, ra, sa, f, nn, an, l, lb, x, u = parse(records[i])
      if st == ACTIVE and lb == batch then
        recovered = recovered + 1
        local attempt = tonumber(a) or 0
        redis.call('RPUSH', base .. 'e:' .. id, error_record(attempt, 'LeaseExpiredError', LEASE_EXPIRED_MESSAGE, now))
        if attempt >= (tonumber(m) or 0) then
          release_unique(unique, u, id)
          if dead_keep then
            writes[#writes + 1] = keys[i]
            writes[#writes + 1] = record(DEAD, a, m, t, p, s, e, ra, sa, nows, nn, an, '', '', with_errors(x), u)
            dead_add[#dead_add + 1] = nows
            dead_add[#dead_add + 1] = id
          else
            add_job_keys(doomed, base, id)
          end
        else
          s = fmt_seq(redis.call('INCR', seqkey))
          if not tonumber(p) then p = '0' end
          writes[#writes + 1] = keys[i]
          writes[#writes + 1] = record(QUEUED, a, m, t, p, s, e, nows, sa, f, nn, an, '', '', with_errors(x), u)
          pusher.push(p, s .. id)
        end
      end
    end
    redis.call('DEL', base .. 'lease:' .. batch)
    redis.call('HDEL', leasecount, batch)
  end
  call_chunked('ZREM', leases, batches)
  pusher.flush()
  call_chunked('ZADD', dead, dead_add)
  call_chunked('MSET', nil, writes)
  call_chunked('DEL', nil, doomed)
  return recovered
end

local function wake(wakekey, n)
  if n <= 0 then return end
  if n > WAKE_TOKENS then n = WAKE_TOKENS end
  local tokens = {}
  for i = 1, n do tokens[i] = '1' end
  redis.call('LPUSH', wakekey, unpack(tokens))
  redis.call('LTRIM', wakekey, 0, WAKE_TOKENS - 1)
end

-- Delete succeeded jobs older than `cutoff` from the front of the retention
-- LIST (at most `limit`). Returns how many entries were removed.
local function trim_list(list, base, cutoff, limit)
  local head = redis.call('LINDEX', list, 0)
  if not head or (tonumber(string.match(head, '^([^|]*)')) or 0) >= cutoff then return 0 end
  local entries = redis.call('LRANGE', list, 0, limit - 1)
  local keys = {}
  local n = 0
  for i = 1, #entries do
    local at, flags, id = string.match(entries[i], '^([^|]*)|([^|]*)|(.*)$')
    if (tonumber(at) or 0) >= cutoff then break end
    if id then
      keys[#keys + 1] = base .. 'j:' .. id
      keys[#keys + 1] = base .. 'b:' .. id
      if flags ~= '' then
        if string.find(flags, 'r', 1, true) then keys[#keys + 1] = base .. 'r:' .. id end
        if string.find(flags, 'e', 1, true) then keys[#keys + 1] = base .. 'e:' .. id end
        if string.find(flags, 'p', 1, true) then keys[#keys + 1] = base .. 'p:' .. id end
      end
    end
    n = i
  end
  redis.call('LTRIM', list, n, -1)
  call_chunked('DEL', nil, keys)
  return n
end

-- Delete jobs finished before `cutoff` from a retention ZSET (at most
-- `limit`), unless they left that state since. Returns how many entries.
local function trim_zset(zset, base, cutoff, limit, state)
  local old = redis.call('ZRANGEBYSCORE', zset, '-inf', '(' .. cutoff, 'LIMIT', 0, limit)
  local n = #old
  if n == 0 then return 0 end
  local jkeys = {}
  for i = 1, n do jkeys[i] = base .. 'j:' .. old[i] end
  local records = mget(jkeys)
  local keys = {}
  for i = 1, n do
    local st = parse(records[i])
    if st == nil or st == state then add_job_keys(keys, base, old[i]) end
  end
  call_chunked('ZREM', zset, old)
  call_chunked('DEL', nil, keys)
  return n
end
