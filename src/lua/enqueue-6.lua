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
    1 + g: the jobs of group g, as unpack_rows reads them (see _common): their count,
       then each NewJob's 13 fields in a row
       {count, id, queue, priority, delay (seconds, 0 = ready now), max_attempts, body, unique key or nil,
        unique_ttl (seconds the key stays held after the job succeeded; nil = 0),
        depends_on (parent ids), after (0 SUCCEEDED, 1 FINISHED, 2 FAILED), limit or nil
        ({key, concurrency, rate, per}), task (name), tags (array of strings), id, ...}
    2 + groups (optional, only when some job has them): the features to read, 'd'
       (depends_on) and/or 'l' (limit), and 'e' ('E' in Cluster) to publish an
       `enqueued` event per job stored (see _events). Without it those fields are not looked at.

  Every stored job is indexed in `live` (search) and its task and tags go in
  t:<id> (one more MSET pair per job).

  A job with parents is stored waiting (d:<id> holds its counts, dp:<id> its parents), registered
  on each parent still running (c:<parent>, flag 'd'), and resolved at once
  when none is: queued with its enqueue position, scheduled by its delay, or
  cancelled (cascading) as its mode says. A parent later in the batch counts;
  a parent not stored because its unique key is held stands for its holder.
  A limited job is stored as any other, plus l:<id> and the key's numbers in
  `limits` (claim enforces them).

  Returns: a flat array {g1, i1, holder1, g2, i2, holder2, ...} for the jobs NOT
    stored because a live job, or a succeeded one inside its unique_ttl window,
    holds their unique key: g the group, i the job's
    1-based position in its group, holder the live job's id. Empty when all
    were stored.
  Errors: "FJDUPLICATE <id>" if a job id already exists (nothing is stored);
    "FJDEPENDENCY <g> <i> <j> <queue>" if parent j of job i of group g is neither
    in that queue nor in the group (nothing is stored; the caller finds out
    whether it is in another queue).
]]
-- @include _common

local GROUP = 6
local nonce = ARGV[1]
local groups = math.floor(#KEYS / GROUP)

-- A group's jobs as sent (unpack_rows, see _common): {count, then each
-- NewJob's W fields in a row}, no table per job for cmsgpack to build and
-- grow. Job i's field k is jobs[W * i - W + 1 + k].
local W = 13

-- Pass 1: refuse existing ids before writing anything (all or none).
local batches, counts, jkeys = {}, {}, {}
local seen = {}
local replay = false
for g = 1, groups do
  local base = base_of(KEYS[(g - 1) * GROUP + 1])
  local jobs = unpack_rows(ARGV[g + 1])
  local c = jobs[1]
  local keys = {}
  for i = 1, c do
    local id = jobs[W * i - W + 2]
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
  for i = 1, c do
    if existing[i] then
      if select(R_NONCE, parse(existing[i])) == nonce then
        replay = true
      else
        return redis.error_reply('FJDUPLICATE ' .. jobs[W * i - W + 2])
      end
    end
  end
  batches[g], counts[g], jkeys[g] = jobs, c, keys
end

local out = {}
-- Optional features of this batch, named in one trailing argument only when
-- some job has them: a plain batch does no per-job work for them.
local features = ARGV[groups + 2] or ''
local has_deps = string.find(features, 'd', 1, true) ~= nil
local has_limits = string.find(features, 'l', 1, true) ~= nil

if has_deps and not replay then
  -- Every parent must be in its dependant's queue (this slot): stored
  -- before, or in this very group. Refused before anything is written.
  for g = 1, groups do
    local base = base_of(KEYS[(g - 1) * GROUP + 1])
    local jobs, c = batches[g], counts[g]
    local ingroup = {}
    for i = 1, c do ingroup[jobs[W * i - W + 2]] = true end
    for i = 1, c do
      local parents = jobs[W * i - W + 10]
      if type(parents) == 'table' then
        for j = 1, #parents do
          local pid = parents[j]
          if not ingroup[pid] and redis.call('EXISTS', base .. 'j:' .. pid) == 0 then
            return redis.error_reply('FJDEPENDENCY ' .. g .. ' ' .. i .. ' ' .. j .. ' ' .. string.match(base, '{(.*)}'))
          end
        end
      end
    end
  end
end

if replay then
  -- This very call was applied before and its reply lost: answer again.
  for g = 1, groups do
    local unique = KEYS[(g - 1) * GROUP + 3]
    local jobs = batches[g]
    local existing = mget(jkeys[g])
    for i = 1, counts[g] do
      local o = W * i - W + 1
      local id, uk = jobs[o + 1], jobs[o + 7]
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
events_on(string.find(features, 'E', 1, true) and 'c' or (string.find(features, 'e', 1, true) and '1' or ''), now)
for g = 1, groups do
  local k = (g - 1) * GROUP
  local prio, sched, unique, seqkey, wakekey = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5]
  local held = KEYS[k + 6]
  local base = base_of(prio)
  local jobs, keys = batches[g], jkeys[g]
  local c = counts[g]
  local first = redis.call('INCRBY', seqkey, c) - c
  local pusher = ready_pusher(prio, base)
  local ready_count, sched_add, writes = 0, {}, {}
  local children, replaced, waiting_add, limit_set = {}, {}, {}, {}
  local live_add = {}
  for i = 1, c do
    local o = W * i - W + 1
    local id, uk = jobs[o + 1], jobs[o + 7]
    local holder = false
    if uk then
      holder = unique_holder(unique, held, uk, now)
      if holder then
        out[#out + 1] = g
        out[#out + 1] = i
        out[#out + 1] = holder
        -- A dependant of this job in the batch waits for the holder instead.
        replaced[id] = holder
      else
        redis.call('HSET', unique, uk, id)
        local ttl = jobs[o + 8]
        if ttl and ttl > 0 then
          writes[#writes + 1] = base .. 'u:' .. id
          writes[#writes + 1] = fmt_time(ttl)
        end
      end
    else
      uk = ''
    end
    if not holder then
      local seq = fmt_seq(first + i)
      local priority = jobs[o + 3]
      local score = priority == 0 and '0' or int_str(-priority)
      local delay = jobs[o + 4]
      local flags, parents = '', nil
      if has_deps then
        parents = jobs[o + 9]
        if type(parents) ~= 'table' or #parents == 0 then parents = nil else flags = 'w' end
      end
      if has_limits then
        local lim = jobs[o + 11]
        if type(lim) == 'table' and lim[1] then
          flags = flags .. 'l'
          writes[#writes + 1] = base .. 'l:' .. id
          writes[#writes + 1] = lim[1]
          if not limit_set[lim[1]] then
            -- The key's latest enqueue sets its numbers.
            limit_set[lim[1]] = true
            redis.call('HSET', base .. 'limits', lim[1], int_str(tonumber(lim[2]) or 0) .. '|'
              .. int_str(tonumber(lim[3]) or 0) .. '|' .. string.format('%.17g', tonumber(lim[4]) or 0))
          end
        end
      end
      if parents then
        -- Waiting: resolved below, once every job of the group is stored.
        writes[#writes + 1] = keys[i]
        writes[#writes + 1] = record(WAITING, '0', int_str(jobs[o + 5]), '0', score, seq, nows, '', '', '', nonce, '', '', '', flags, uk)
        waiting_add[#waiting_add + 1] = nows
        waiting_add[#waiting_add + 1] = id
        children[#children + 1] = i
      elseif delay > 0 then
        local due = fmt_time(now + delay)
        writes[#writes + 1] = keys[i]
        writes[#writes + 1] = record(SCHEDULED, '0', int_str(jobs[o + 5]), '0', score, seq, nows, due, '', '', nonce, '', '', '', flags, uk)
        sched_add[#sched_add + 1] = due
        sched_add[#sched_add + 1] = seq .. id
      else
        writes[#writes + 1] = keys[i]
        writes[#writes + 1] = record(QUEUED, '0', int_str(jobs[o + 5]), '0', score, seq, nows, '', '', '', nonce, '', '', '', flags, uk)
        pusher.push(score, seq .. id)
        ready_count = ready_count + 1
      end
      writes[#writes + 1] = base .. 'b:' .. id
      writes[#writes + 1] = jobs[o + 6]
      local task, tags = jobs[o + 12] or '', jobs[o + 13]
      local meta = task
      if type(tags) == 'table' and #tags > 0 then meta = task .. '\t' .. table.concat(tags, '\t') end
      if meta ~= '' then
        writes[#writes + 1] = base .. 't:' .. id
        writes[#writes + 1] = meta
      end
      live_add[#live_add + 1] = nows
      live_add[#live_add + 1] = id
      event(base, 'enqueued', id, task)
    end
  end
  call_chunked('MSET', nil, writes)
  call_chunked('ZADD', base .. 'live', live_add)
  pusher.flush()
  call_chunked('ZADD', sched, sched_add)
  -- A delayed job wakes idle workers too: their wait must now end at its due time.
  wake(wakekey, ready_count + (#sched_add > 0 and 1 or 0))
  if #children > 0 then
    call_chunked('ZADD', base .. 'waiting', waiting_add)
    -- Count each dependant's parents by state, and register it on the ones
    -- still running; in batch order, so a dependant cancelled here is seen
    -- as failed by the later ones and cascades to the earlier ones.
    local ran = 0
    for ci = 1, #children do
      local o = W * children[ci] - W + 1
      local id = jobs[o + 1]
      local parents = jobs[o + 9]
      local pending, failed = 0, 0
      for j = 1, #parents do
        local pid = replaced[parents[j]] or parents[j]
        local pk = base .. 'j:' .. pid
        local pf = {parse(redis.call('GET', pk))}
        local pst = pf[R_STATE]
        if pst == SUCCEEDED then
          -- done
        elseif pst == nil or pst == DEAD or pst == CANCELLED then
          failed = failed + 1
        else
          pending = pending + 1
          redis.call('RPUSH', base .. 'c:' .. pid, id)
          if not has_flag(pf[R_FLAGS], 'd') then
            pf[R_FLAGS] = pf[R_FLAGS] .. 'd'
            redis.call('SET', pk, record_of(pf))
          end
        end
      end
      local mode = tonumber(jobs[o + 10]) or 0
      local delay = jobs[o + 4] > 0 and fmt_time(jobs[o + 4]) or ''
      redis.call('SET', base .. 'd:' .. id, deps_format(mode, pending, failed, delay))
      redis.call('SET', base .. 'dp:' .. id, cmsgpack.pack(parents))
      local outcome = deps_outcome(mode, pending, failed)
      if outcome ~= 'wait' then
        local f = {parse(redis.call('GET', keys[children[ci]]))}
        if outcome == 'run' then
          deps_run(base, id, f, delay, now, nows)
          ran = ran + 1
        else
          deps_cancel(base, id, f, nows)
          if has_flag(f[R_FLAGS], 'd') then deps_settle(base, id, true, now, nows) end
        end
      end
    end
    wake(wakekey, ran)
  end
end

if #KEYS > groups * GROUP then
  local names = {}
  for g = 0, groups - 1 do
    names[#names + 1] = string.match(KEYS[g * GROUP + 1], '{(.*)}')
  end
  redis.call('SADD', KEYS[#KEYS], unpack(names))
end

events_publish()
return out
