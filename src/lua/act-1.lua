--[[
  Act on jobs by id, a batch per queue: retry (dead or cancelled -> queued,
  fresh attempts), cancel (not finished -> cancelled) or delete (not active ->
  gone, every key of it). Each job's change is atomic; the batch is one call.

  cancel: an active job's lease is voided (its token stays, so its worker's
  ack and renewals are answered stale). A queued job's entry in its ready list
  is left as a ghost that claim skips (removing it from the middle of a long
  list would cost O(n)). A waiting job leaves `waiting`; a parked limited job
  its key's parked set; an active limited job frees its key's slot.
  Dependants count the job failed, in this same call, and cascade.

  retry: attempt 0, its errors and progress kept, a new position at the back
  of its priority; it takes its unique key again (refused, 0, if a live job,
  or a succeeded one inside its window, holds it). Dependants already
  cancelled are not revived. With an edit (one id): body, priority and
  max_attempts replaced first.

  delete: the job is taken out of whichever structure holds it, its unique key
  freed (a uniqueness window included), its waiting dependants settled as on
  cancel, and every key of it deleted.

  KEYS, one per queue (several only outside Redis Cluster); the other keys of
  the queue are built from its base (same slot):
    1 <prefix>:{q}:live

  ARGV:
    1 op: 'retry', 'cancel', 'delete', or 'moved' (a delete of a dead or
      cancelled job that was retried into another queue: no event)
    2 result_ttl: seconds to keep a cancelled job (0: delete it now)
    3 events: '1' ('c' in Cluster) to publish enqueued / cancelled / deleted events (see _events)
    4 edit: '' or msgpack {body, priority, max_attempts} (retry of one id)
    4 + g: the job ids of group g, msgpack array

  Returns: a flat array of 1 (done) / 0 (unknown, or a state that does not
    allow it), one per id, group by group.
]]
-- @include _common

local op = ARGV[1]
local result_ttl = tonumber(ARGV[2])
local now = now_time()
local nows = fmt_time(now)
events_on(ARGV[3], now)
local edit = ARGV[4] ~= '' and cmsgpack.unpack(ARGV[4]) or nil

-- Out of the structure that lists a not-finished job (cancel and delete).
local function unlist_live(base, id, state, member, flags, lease_batch)
  if state == QUEUED then
    if redis.call('ZREM', base .. 'ready', member) == 0
      and not (has_flag(flags, 'l') and limit_unpark_cancelled(base, id, member, nows)) then
      redis.call('SADD', base .. 'ghosts', member)
    end
  elseif state == SCHEDULED or state == RETRY_PENDING then
    redis.call('ZREM', base .. 'sched', member)
    redis.call('ZREM', base .. 'retry', member)
  elseif state == ACTIVE then
    lease_release(base .. 'leases', base .. 'leasecount', base, lease_batch, 1)
    if has_flag(flags, 'l') then limit_release(base, id, nows) end
  elseif state == WAITING then
    redis.call('ZREM', base .. 'waiting', id)
  end
  redis.call('ZREM', base .. 'live', id)
end

local FINISHED_INDEX = {[SUCCEEDED] = 'done', [DEAD] = 'dead', [CANCELLED] = 'cancelled'}

local function cancel_one(base, id, f)
  local state = f[R_STATE]
  if FINISHED_INDEX[state] then return 0 end
  unlist_live(base, id, state, f[R_SEQ] .. id, f[R_FLAGS], f[R_LEASE_BATCH])
  release_unique(base .. 'unique', f[R_UNIQUE_KEY], id)
  event(base, 'cancelled', id, task_of(base, id))
  if has_flag(f[R_FLAGS], 'd') then deps_settle(base, id, true, now, nows) end
  if result_ttl > 0 then
    f[R_STATE], f[R_FINISHED_AT], f[R_LEASE_UNTIL], f[R_LEASE_BATCH] = CANCELLED, nows, '', ''
    redis.call('SET', base .. 'j:' .. id, record_of(f))
    redis.call('ZADD', base .. 'cancelled', nows, id)
  else
    local keys = {}
    add_job_keys(keys, base, id, f[R_FLAGS])
    redis.call('DEL', unpack(keys))
  end
  return 1
end

local function retry_one(base, id, f)
  local state = f[R_STATE]
  if state ~= DEAD and state ~= CANCELLED then return 0 end
  local uk = f[R_UNIQUE_KEY]
  if uk ~= '' then
    if unique_holder(base .. 'unique', base .. 'uniqueheld', uk, now) then return 0 end
    redis.call('HSET', base .. 'unique', uk, id)
  end
  if edit then
    redis.call('SET', base .. 'b:' .. id, edit[1])
    f[R_SCORE] = edit[2] == 0 and '0' or int_str(-edit[2])
    f[R_MAX_ATTEMPTS] = int_str(edit[3])
  end
  if not tonumber(f[R_SCORE]) then f[R_SCORE] = '0' end
  redis.call('ZREM', base .. FINISHED_INDEX[state], id)
  f[R_SEQ] = fmt_seq(redis.call('INCR', base .. 'seq'))
  f[R_STATE], f[R_ATTEMPT], f[R_RUN_AT], f[R_FINISHED_AT], f[R_LEASE_UNTIL], f[R_LEASE_BATCH] =
    QUEUED, '0', nows, '', '', ''
  redis.call('SET', base .. 'j:' .. id, record_of(f))
  redis.call('ZADD', base .. 'live', tonumber(f[R_ENQUEUED_AT]) or now, id)
  local pusher = ready_pusher(base .. 'prio', base)
  pusher.push(f[R_SCORE], f[R_SEQ] .. id)
  pusher.flush()
  wake(base .. 'wake', 1)
  event(base, 'enqueued', id, task_of(base, id))
  return 1
end

local function delete_one(base, id, f, moved)
  local state = f[R_STATE]
  if state == ACTIVE then return 0 end
  local finished = FINISHED_INDEX[state]
  if moved and state ~= DEAD and state ~= CANCELLED then return 0 end
  if finished then
    redis.call('ZREM', base .. finished, id)
    redis.call('ZREM', base .. 'live', id)
  else
    unlist_live(base, id, state, f[R_SEQ] .. id, f[R_FLAGS], f[R_LEASE_BATCH])
  end
  local uk = f[R_UNIQUE_KEY]
  if uk ~= '' and redis.call('HGET', base .. 'unique', uk) == id then
    redis.call('HDEL', base .. 'unique', uk)
    redis.call('ZREM', base .. 'uniqueheld', uk)
  end
  if not moved then event(base, 'deleted', id, task_of(base, id)) end
  if has_flag(f[R_FLAGS], 'd') then deps_settle(base, id, true, now, nows) end
  local keys = {}
  add_job_keys(keys, base, id, nil)
  redis.call('DEL', unpack(keys))
  return 1
end

local out = {}
for g = 1, #KEYS do
  local base = base_of(KEYS[g])
  local ids = cmsgpack.unpack(ARGV[4 + g])
  for i = 1, #ids do
    local id = ids[i]
    local f = {parse(redis.call('GET', base .. 'j:' .. id))}
    local done = 0
    if f[R_STATE] then
      if op == 'cancel' then
        done = cancel_one(base, id, f)
      elseif op == 'retry' then
        done = retry_one(base, id, f)
      else
        done = delete_one(base, id, f, op == 'moved')
      end
    end
    out[#out + 1] = done
  end
end
events_publish()
return out
