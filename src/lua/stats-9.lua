--[[
  Job counts of queues, per state. Due delayed jobs count as queued.

  KEYS, one group of 9 per queue (several groups only outside Redis Cluster):
    1 <prefix>:{q}:ready      2 <prefix>:{q}:prio       3 <prefix>:{q}:sched
    4 <prefix>:{q}:retry      5 <prefix>:{q}:leasecount 6 <prefix>:{q}:done
    7 <prefix>:{q}:dead       8 <prefix>:{q}:cancelled  9 <prefix>:{q}:ghosts

  ARGV: none.

  Also read, built from the queue's base (same slot): <prefix>:{q}:waiting
  (dependants waiting on their parents), <prefix>:{q}:limitwait and the
  lq:<key> sets it names (queued jobs parked by their limit key).

  Returns: per group, an array of 8 counts in state-number order:
    scheduled, queued, active, succeeded, retry_pending, dead, cancelled, waiting
  or, for a damaged queue (a key of the wrong type: see damaged_key in
  _common), a string saying what is wrong.
]]
-- @no-writes: reads only (as a Redis 7 function it may run on a full server: scripts.py)
-- @include _common

local GROUP = 9
local now = now_time()

local function counts_of(k)
  local base = base_of(KEYS[k + 1])
  local out = {}
  local listed = 0
  local prios = redis.call('ZRANGE', KEYS[k + 2], 0, -1)
  for i = 1, #prios do listed = listed + redis.call('LLEN', base .. 'rl:' .. prios[i]) end
  local active = 0
  local counts = redis.call('HVALS', KEYS[k + 5])
  for i = 1, #counts do active = active + (tonumber(counts[i]) or 0) end
  local sched_due = redis.call('ZCOUNT', KEYS[k + 3], '-inf', now)
  local retry_due = redis.call('ZCOUNT', KEYS[k + 4], '-inf', now)
  out[#out + 1] = redis.call('ZCARD', KEYS[k + 3]) - sched_due
  local parked = 0
  local limited = redis.call('ZRANGE', base .. 'limitwait', 0, -1)
  for i = 1, #limited do parked = parked + redis.call('ZCARD', base .. 'lq:' .. limited[i]) end
  out[#out + 1] = listed - redis.call('SCARD', KEYS[k + 9]) + redis.call('ZCARD', KEYS[k + 1]) + sched_due + retry_due + parked
  out[#out + 1] = active
  out[#out + 1] = redis.call('ZCARD', KEYS[k + 6])
  out[#out + 1] = redis.call('ZCARD', KEYS[k + 4]) - retry_due
  out[#out + 1] = redis.call('ZCARD', KEYS[k + 7])
  out[#out + 1] = redis.call('ZCARD', KEYS[k + 8])
  out[#out + 1] = redis.call('ZCARD', base .. 'waiting')
  -- Not a count: a damaged search index is reported with the rest.
  redis.call('ZCARD', base .. 'live')
  return out
end

local replies = {}
for g = 0, math.floor(#KEYS / GROUP) - 1 do
  local ok, counts = pcall(counts_of, g * GROUP)
  replies[g + 1] = ok and counts or damage_report(counts, base_of(KEYS[g * GROUP + 1]))
end
return replies
