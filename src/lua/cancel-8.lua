--[[
  Cancel a job that has not finished. An active job's lease is voided (its
  token stays, so its worker's ack and renewals are answered stale). A queued
  job's entry in its ready list is left as a ghost that claim skips (removing
  it from the middle of a long list would cost O(n)). A waiting job leaves the
  `waiting` set; a parked limited job its key's parked set; an active limited
  job frees its key's slot. Dependants of the cancelled job count it failed,
  in this same call, and cascade (keys reached through the queue's base).

  KEYS, one group of 8 per queue to look in (several groups only outside Redis
  Cluster; the first group holding the job wins):
    1 <prefix>:{q}:ready   2 <prefix>:{q}:sched   3 <prefix>:{q}:retry
    4 <prefix>:{q}:leases  5 <prefix>:{q}:leasecount  6 <prefix>:{q}:cancelled
    7 <prefix>:{q}:unique  8 <prefix>:{q}:ghosts

  ARGV:
    1 job id
    2 result_ttl: seconds to keep the cancelled job (0: delete it now)

  Returns: 1 if cancelled, 0 if the job is unknown or already finished.
]]
-- @include _common

local GROUP = 8
local id = ARGV[1]
for g = 0, math.floor(#KEYS / GROUP) - 1 do
  local k = g * GROUP
  local base = base_of(KEYS[k + 1])
  local jk = base .. 'j:' .. id
  local state, attempt, max_attempts, token, score, seq, enqueued_at, run_at, started_at,
    finished_at, nonce, ack_nonce, lease_until, lease_batch, flags, unique_key = parse(redis.call('MGET', jk)[1])
  if state then
    local member = seq .. id
    local now = now_time()
    local nows = fmt_time(now)
    if state == QUEUED then
      if redis.call('ZREM', KEYS[k + 1], member) == 0
        and not (has_flag(flags, 'l') and limit_unpark_cancelled(base, id, member, nows)) then
        redis.call('SADD', KEYS[k + 8], member)
      end
    elseif state == SCHEDULED or state == RETRY_PENDING then
      redis.call('ZREM', KEYS[k + 2], member)
      redis.call('ZREM', KEYS[k + 3], member)
    elseif state == ACTIVE then
      lease_release(KEYS[k + 4], KEYS[k + 5], base, lease_batch, 1)
      if has_flag(flags, 'l') then limit_release(base, id, nows) end
    elseif state == WAITING then
      redis.call('ZREM', base .. 'waiting', id)
    else
      return 0
    end
    release_unique(KEYS[k + 7], unique_key, id)
    -- Its dependants count it failed, in this same call (and cascade).
    if has_flag(flags, 'd') then deps_settle(base, id, true, now, nows) end
    if tonumber(ARGV[2]) > 0 then
      redis.call('SET', jk, record(CANCELLED, attempt, max_attempts, token, score, seq, enqueued_at, run_at, started_at, nows, nonce, ack_nonce, '', '', flags, unique_key))
      redis.call('ZADD', KEYS[k + 6], nows, id)
    else
      local keys = {}
      add_job_keys(keys, base, id, flags)
      redis.call('DEL', unpack(keys))
    end
    return 1
  end
end
return 0
