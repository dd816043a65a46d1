--[[
  What an idle worker needs before it blocks on the wake-up lists: is a job
  ready, and when does the next delayed job fall due or the next lease expire?
  If a job is ready (or due) a wake-up token is pushed, so the BLPOP that the
  worker sends right behind this call returns at once; if none is, leftover
  tokens are dropped, so it blocks. A paused queue has no
  ready or due jobs as far as this is concerned (only its lease deadlines
  count: claim takes back expired leases even while paused).

  Jobs parked by their limit key are not ready (a worker woken for them would
  find nothing to claim and spin): a key in <prefix>:{q}:limitwait (read
  through the queue's base, same slot) counts only by the time it may go
  again, like a delayed job; one waiting for an active job to leave (+inf) not
  at all (that job's ack wakes the workers). Waiting dependants are in no
  structure read here.

  KEYS, one group of 7 per queue (several groups only outside Redis Cluster):
    1 <prefix>:{q}:ready   2 <prefix>:{q}:prio   3 <prefix>:{q}:sched
    4 <prefix>:{q}:retry   5 <prefix>:{q}:leases 6 <prefix>:{q}:wake
    7 <prefix>:{q}:paused

  ARGV: none.

  Returns: {ready, wait_us}: ready is 1 if a job can be claimed now, else 0;
    wait_us the microseconds until the earliest due time or lease deadline
    (-1 if there is none).
]]
-- @include _common

local GROUP = 7
local now = now_time()
local ready_now = 0
local earliest = nil
for g = 0, math.floor(#KEYS / GROUP) - 1 do
  local k = g * GROUP
  local found = false
  local first = 3
  if redis.call('EXISTS', KEYS[k + 7]) == 1 then
    first = 5
  elseif redis.call('ZCARD', KEYS[k + 1]) > 0 then
    found = true
  else
    -- `prio` may still name a list that a claim emptied exactly (claim drops
    -- such entries lazily): that is no ready job, and is dropped here.
    local base = base_of(KEYS[k + 1])
    local prios = redis.call('ZRANGE', KEYS[k + 2], 0, -1)
    for i = 1, #prios do
      if redis.call('EXISTS', base .. 'rl:' .. prios[i]) == 1 then
        found = true
        break
      end
      redis.call('ZREM', KEYS[k + 2], prios[i])
    end
  end
  if not found then
    local heads = {}
    for j = first, 5 do heads[#heads + 1] = redis.call('ZRANGE', KEYS[k + j], 0, 0, 'WITHSCORES') end
    if first == 3 then
      heads[#heads + 1] = redis.call('ZRANGEBYSCORE', base_of(KEYS[k + 1]) .. 'limitwait', '-inf', '(inf', 'LIMIT', 0, 1, 'WITHSCORES')
    end
    for j = 1, #heads do
      local head = heads[j]
      if #head > 0 then
        local t = tonumber(head[2])
        if t <= now then
          found = true
        elseif not earliest or t < earliest then
          earliest = t
        end
      end
    end
  end
  if found then
    ready_now = 1
    wake(KEYS[k + 6], 1)
  else
    -- Tokens left over from jobs claimed since (or from a release into the
    -- waiting set) would end the BLPOP behind this call at once for nothing;
    -- an enqueue after this call pushes a fresh one.
    redis.call('DEL', KEYS[k + 6])
  end
end
if ready_now == 1 or not earliest then
  return {ready_now, -1}
end
return {0, math.floor((earliest - now) * 1000000) + 1}
