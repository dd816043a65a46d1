--[[
  What an idle worker needs before it blocks on the wake-up lists: is a job
  ready, and when does the next delayed job fall due or the next lease expire?
  If a job is ready (or due) a wake-up token is pushed, so the BLPOP that the
  worker sends right behind this call returns at once. A paused queue has no
  ready or due jobs as far as this is concerned (only its lease deadlines
  count: claim takes back expired leases even while paused).

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
  elseif redis.call('ZCARD', KEYS[k + 1]) > 0 or redis.call('ZCARD', KEYS[k + 2]) > 0 then
    found = true
  end
  if not found then
    for j = first, 5 do
      local head = redis.call('ZRANGE', KEYS[k + j], 0, 0, 'WITHSCORES')
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
  end
end
if ready_now == 1 or not earliest then
  return {ready_now, -1}
end
return {0, math.floor((earliest - now) * 1000000) + 1}
