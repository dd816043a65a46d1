--[[
  Store a batch of new jobs, all or none.

  KEYS, one group of 6 per queue (several groups only outside Redis Cluster):
    1 <prefix>:{q}:prio    2 <prefix>:{q}:sched   3 <prefix>:{q}:unique
    4 <prefix>:{q}:seq     5 <prefix>:{q}:wake    6 <prefix>:{q}:uniqueheld
  KEYS[6 * groups + 1] (optional, outside Cluster only): the queue registry SET;
    every queue of the call is added to it.

  ARGV:
    1  nonce: random per call. A call retried after a lost reply finds its own
       jobs stored with this nonce and answers as the first time did.
    1 + g: the jobs of group g, msgpack: an array of NewJob arrays
       {id, queue, priority, delay (seconds, 0 = ready now), max_attempts, body, unique key or nil,
        unique_ttl (seconds the key stays held after the job succeeded; absent = 0)}

  Returns: a flat array {g1, i1, holder1, g2, i2, holder2, ...} for the jobs NOT
    stored because a live job, or a succeeded one inside its unique_ttl window,
    holds their unique key: g the group, i the job's
    1-based position in its group, holder the live job's id. Empty when all
    were stored.
  Errors: "FJDUPLICATE <id>" if a job id already exists (nothing is stored).
]]
-- @include _common

local GROUP = 6
local nonce = ARGV[1]
local groups = math.floor(#KEYS / GROUP)

-- Pass 1: refuse existing ids before writing anything (all or none).
local batches, jkeys = {}, {}
local seen = {}
local replay = false
for g = 1, groups do
  local base = base_of(KEYS[(g - 1) * GROUP + 1])
  local jobs = cmsgpack.unpack(ARGV[g + 1])
  local keys = {}
  for i = 1, #jobs do
    local id = jobs[i][1]
    if seen[id] then
      return redis.error_reply('FJDUPLICATE ' .. id .. ' (twice in one batch)')
    end
    seen[id] = true
    keys[i] = base .. 'j:' .. id
  end
  -- EXISTS answers with a count, cheaper than reading every key back.
  local existing = {}
  local found = 0
  for i = 1, #keys, CHUNK do
    found = found + redis.call('EXISTS', unpack(keys, i, math.min(i + CHUNK - 1, #keys)))
  end
  if found > 0 then existing = mget(keys) end
  for i = 1, #jobs do
    if existing[i] then
      local n = select(11, parse(existing[i]))
      if n == nonce then
        replay = true
      else
        return redis.error_reply('FJDUPLICATE ' .. jobs[i][1])
      end
    end
  end
  batches[g], jkeys[g] = jobs, keys
end

local out = {}

if replay then
  -- This very call was applied before and its reply lost: answer again.
  for g = 1, groups do
    local unique = KEYS[(g - 1) * GROUP + 3]
    local jobs = batches[g]
    local existing = mget(jkeys[g])
    for i = 1, #jobs do
      local id, uk = jobs[i][1], jobs[i][7]
      if uk and not existing[i] then
        local holder = redis.call('HGET', unique, uk)
        if holder and holder ~= id then
          out[#out + 1] = g
          out[#out + 1] = i
          out[#out + 1] = holder
        end
      end
    end
  end
  return out
end

-- Pass 2: store.
local now = now_time()
local nows = fmt_time(now)
for g = 1, groups do
  local k = (g - 1) * GROUP
  local prio, sched, unique, seqkey, wakekey = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  local held = KEYS[k + 6]
  local base = base_of(prio)
  local jobs, keys = batches[g], jkeys[g]
  local c = #jobs
  local first = redis.call('INCRBY', seqkey, c) - c
  local pusher = ready_pusher(prio, base)
  local ready_count, sched_add, writes = 0, {}, {}
  for i = 1, c do
    local job = jobs[i]
    local id, uk = job[1], job[7]
    local holder = false
    if uk then
      holder = unique_holder(unique, held, uk, now)
      if holder then
        out[#out + 1] = g
        out[#out + 1] = i
        out[#out + 1] = holder
      else
        redis.call('HSET', unique, uk, id)
        local ttl = job[8]
        if ttl and ttl > 0 then
          writes[#writes + 1] = base .. 'u:' .. id
          writes[#writes + 1] = fmt_time(ttl)
        end
      end
    else
      uk = ''
    end
    if not holder then
      local s = fmt_seq(first + i)
      local score = job[3] == 0 and '0' or int_str(-job[3])
      local delay = job[4]
      if delay > 0 then
        local due = fmt_time(now + delay)
        writes[#writes + 1] = keys[i]
        writes[#writes + 1] = record(SCHEDULED, '0', int_str(job[5]), '0', score, s, nows, due, '', '', nonce, '', '', '', '', uk)
        sched_add[#sched_add + 1] = due
        sched_add[#sched_add + 1] = s .. id
      else
        writes[#writes + 1] = keys[i]
        writes[#writes + 1] = record(QUEUED, '0', int_str(job[5]), '0', score, s, nows, '', '', '', nonce, '', '', '', '', uk)
        pusher.push(score, s .. id)
        ready_count = ready_count + 1
      end
      writes[#writes + 1] = base .. 'b:' .. id
      writes[#writes + 1] = job[6]
    end
  end
  call_chunked('MSET', nil, writes)
  pusher.flush()
  call_chunked('ZADD', sched, sched_add)
  -- A delayed job wakes idle workers too: their wait must now end at its due time.
  wake(wakekey, ready_count + (#sched_add > 0 and 1 or 0))
end

if #KEYS > groups * GROUP then
  local names = {}
  for g = 0, groups - 1 do
    names[#names + 1] = string.match(KEYS[g * GROUP + 1], '{(.*)}')
  end
  redis.call('SADD', KEYS[#KEYS], unpack(names))
end

return out
