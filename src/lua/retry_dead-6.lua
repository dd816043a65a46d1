--[[
  Put a dead job back in its queue with a fresh set of attempts (its errors
  are kept, and so is its unique_ttl). Refused if another live job, or a
  succeeded one inside its window, now holds its unique key.

  KEYS, one group of 6 per queue to look in (several groups only outside Redis
  Cluster; the first group holding the job wins):
    1 <prefix>:{q}:prio    2 <prefix>:{q}:dead    3 <prefix>:{q}:unique
    4 <prefix>:{q}:seq     5 <prefix>:{q}:wake    6 <prefix>:{q}:uniqueheld

  ARGV:
    1 job id

  Returns: 1 if requeued, 0 if the job is unknown or not dead.
]]
-- @include _common

local GROUP = 6
local id = ARGV[1]
for g = 0, math.floor(#KEYS / GROUP) - 1 do
  local k = g * GROUP
  local prio, dead, unique = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3]
  local base = base_of(prio)
  local jk = base .. 'j:' .. id
  local state, attempt, max_attempts, token, score, seq, enqueued_at, run_at, started_at,
    finished_at, nonce, ack_nonce, lease_until, lease_batch, flags, unique_key = parse(redis.call('MGET', jk)[1])
  if state then
    if state ~= DEAD then return 0 end
    local now = now_time()
    if unique_key ~= '' then
      if unique_holder(unique, KEYS[k + 6], unique_key, now) then return 0 end
      redis.call('HSET', unique, unique_key, id)
    end
    local nows = fmt_time(now)
    seq = fmt_seq(redis.call('INCR', KEYS[k + 4]))
    if not tonumber(score) then score = '0' end
    redis.call('SET', jk, record(QUEUED, '0', max_attempts, token, score, seq, enqueued_at, nows, started_at, '', nonce, ack_nonce, '', '', flags, unique_key))
    redis.call('ZREM', dead, id)
    local pusher = ready_pusher(prio, base)
    pusher.push(score, seq .. id)
    pusher.flush()
    wake(KEYS[k + 5], 1)
    return 1
  end
end
return 0
