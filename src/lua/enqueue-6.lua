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
    1 + g: the jobs of group g (redis/connection.py pack_jobs), a msgpack stream:
       their count; priority, delay (seconds, 0 = ready now) and meta (the t:<id>
       value: task, then tags, tab-separated; '' for neither), each the value all
       the group's jobs share, or nil when they differ; then each job's fields in
       a row: id, body, max_attempts, then only if the features say so
       'u': unique key or nil, unique_ttl (seconds the key stays held after the job
            succeeded; nil = 0);
       'd': depends_on (parent ids), after (0 SUCCEEDED, 1 FINISHED, 2 FAILED);
       'l': limit or nil ({key, concurrency, rate, per});
       and last those of priority, delay and meta that were nil above.
    2 + groups (optional, only when some job has them): the features, 'u' (unique
       keys), 'd' (depends_on) and/or 'l' (limit), and 'e' ('E' in Cluster) to
       publish an `enqueued` event per job stored (see _events). A plain batch of
       one task, priority and delay sends 3 values per job (a NewJob has 13 fields).

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
  Errors: "FJDUPLICATE <id>" if a job id already exists (nothing is stored; the
    ids of one call are distinct: the client refuses a batch that repeats one
    before sending it);
    "FJDEPENDENCY <g> <i> <j> <queue>" if parent j of job i of group g is neither
    in that queue nor in the group (nothing is stored; the caller finds out
    whether it is in another queue).
]]
-- @include _common

local GROUP = 6
local nonce = ARGV[1]
local groups = math.floor(#KEYS / GROUP)
-- Optional features of this batch, named in one trailing argument only when
-- some job has them: a plain batch sends and reads no fields for them.
local features = ARGV[groups + 2] or ''
local has_unique = string.find(features, 'u', 1, true) ~= nil
local has_deps = string.find(features, 'd', 1, true) ~= nil
local has_limits = string.find(features, 'l', 1, true) ~= nil

-- A job's fields in its row (see ARGV): job i's field F is jobs[o + F] (the
-- loops below say how o goes), numbered from 3 so that max_attempts is 5:
-- the lines that build the records read it as jobs[o + 5]. W: how many a row
-- has before the ones a group sends only when its jobs differ in them.
local F_ID, F_BODY, F_MAX_ATTEMPTS = 3, 4, 5
local W = 3
local F_UNIQUE, F_TTL, F_PARENTS, F_AFTER, F_LIMIT
if has_unique then F_UNIQUE, F_TTL, W = W + 3, W + 4, W + 2 end
if has_deps then F_PARENTS, F_AFTER, W = W + 3, W + 4, W + 2 end
if has_limits then F_LIMIT, W = W + 3, W + 1 end

-- Values per part at most: cmsgpack returns a part's values on Lua's C
-- stack, which holds 7,998 of them (redis-server 6.2 and 7.0, measured).
local PART = 7000

-- A group's jobs: {count, the shared priority, delay and meta (nil: per
-- job, field f_priority, f_delay, f_meta), w (fields per row), parts, sizes}:
-- the rows in parts of whole rows, sizes[p] in parts[p], each part a table
-- whose [1] is unpack_limit's offset and whose rows start at [2]. Each part is
-- collected by one presized table constructor from cmsgpack.unpack_limit's
-- results, where an array of the whole batch would be grown by cmsgpack a
-- field at a time (~600 instructions per field; callgrind, redis-server 6.2:
-- a quarter of enqueue's cost at a NewJob's 13 fields).
local function read_jobs(packed)
  local head = {cmsgpack.unpack_limit(packed, 4, 0)}
  local batch = {count = head[2], priority = head[3], delay = head[4], meta = head[5]}
  local w = W
  if batch.priority == nil then batch.f_priority, w = w + 3, w + 1 end
  if batch.delay == nil then batch.f_delay, w = w + 3, w + 1 end
  if batch.meta == nil then batch.f_meta, w = w + 3, w + 1 end
  local rows = math.floor(PART / w)
  local parts, sizes, n = {}, {}, 0
  local off, left = head[1], batch.count
  while left > 0 do
    local part = {cmsgpack.unpack_limit(packed, rows * w, off)}
    n = n + 1
    parts[n], sizes[n] = part, math.min(left, rows)
    off, left = part[1], left - rows
  end
  batch.w, batch.parts, batch.sizes = w, parts, sizes
  return batch
end

-- The per-job loops run over i = 1..count and step through the parts as
-- they go: `if i > last then p = p + 1; jobs, o, last = parts[p], -1 - w,
-- last + sizes[p] end; o = o + w`, and then job i's field F is jobs[o + F].

-- Pass 1: refuse existing ids before writing anything (all or none).
local batches, jkeys = {}, {}
local replay = false
for g = 1, groups do
  local base = base_of(KEYS[(g - 1) * GROUP + 1])
  local batch = read_jobs(ARGV[g + 1])
  local parts, sizes, w, c = batch.parts, batch.sizes, batch.w, batch.count
  local keys = {}
  local jobs, p, o, last = nil, 0, 0, 0
  for i = 1, c do
    if i > last then p = p + 1; jobs, o, last = parts[p], -1 - w, last + sizes[p] end
    o = o + w
    keys[i] = base .. 'j:' .. jobs[o + F_ID]
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
        return redis.error_reply('FJDUPLICATE ' .. string.sub(keys[i], #base + 3))
      end
    end
  end
  batches[g], jkeys[g] = batch, keys
end

local out = {}

if has_deps and not replay then
  -- Every parent must be in its dependant's queue (this slot): stored
  -- before, or in this very group. Refused before anything is written.
  for g = 1, groups do
    local base = base_of(KEYS[(g - 1) * GROUP + 1])
    local batch = batches[g]
    local parts, sizes, w, c = batch.parts, batch.sizes, batch.w, batch.count
    local ingroup = {}
    for p = 1, #parts do
      local jobs = parts[p]
      for o = -1, -1 + w * (sizes[p] - 1), w do ingroup[jobs[o + F_ID]] = true end
    end
    local jobs, p, o, last = nil, 0, 0, 0
    for i = 1, c do
      if i > last then p = p + 1; jobs, o, last = parts[p], -1 - w, last + sizes[p] end
      o = o + w
      local parents = jobs[o + F_PARENTS]
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
    local batch = batches[g]
    local parts, sizes, w = batch.parts, batch.sizes, batch.w
    local existing = mget(jkeys[g])
    local jobs, p, o, last = nil, 0, 0, 0
    for i = 1, batch.count do
      if i > last then p = p + 1; jobs, o, last = parts[p], -1 - w, last + sizes[p] end
      o = o + w
      local id, uk = jobs[o + F_ID], has_unique and jobs[o + F_UNIQUE]
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
  local batch, keys = batches[g], jkeys[g]
  local parts, sizes, w, c = batch.parts, batch.sizes, batch.w, batch.count
  -- The group's shared priority (as its score), delay and meta, or nil: then
  -- each job's own, at f_priority, f_delay, f_meta.
  local f_priority, f_delay, f_meta = batch.f_priority, batch.f_delay, batch.f_meta
  local c_score, c_delay, c_meta = nil, batch.delay, batch.meta
  if not f_priority then c_score = batch.priority == 0 and '0' or int_str(-batch.priority) end
  local first = redis.call('INCRBY', seqkey, c) - c
  local pusher = ready_pusher(prio, base)
  -- Appends by counters, not `t[#t + 1]` (a binary search for the border each).
  local ready_count, sched_add, writes, ns, nw = 0, {}, {}, 0, 0
  local children, child_rows, child_at, replaced, waiting_add, limit_set = {}, {}, {}, {}, {}, {}
  local live_add, nl = {}, 0
  -- The ready list of the latest score (a batch's jobs mostly share one),
  -- appended to here rather than through a call of pusher.push per job.
  local ready_score, ready_list, nr = nil, nil, 0
  -- The members of the ready lists and sched, <seq><id>, are made by one
  -- concat each from fmt_seq's memoized halves, the high one kept while it
  -- stays (it changes every 100 jobs): no call and no seq string per job.
  local seq_high, seq_hs = nil, nil
  -- Nobody listening (or events off) is the usual case: no call per job then.
  local heard = events_for(base)
  local jobs, p, o, last = nil, 0, 0, 0
  for i = 1, c do
    if i > last then p = p + 1; jobs, o, last = parts[p], -1 - w, last + sizes[p] end
    o = o + w
    local id, uk = jobs[o + F_ID], has_unique and jobs[o + F_UNIQUE]
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
        local ttl = jobs[o + F_TTL]
        if ttl and ttl > 0 then
          writes[nw + 1], writes[nw + 2] = base .. 'u:' .. id, fmt_time(ttl)
          nw = nw + 2
        end
      end
    else
      uk = ''
    end
    if not holder then
      local score = c_score
      if not score then
        local priority = jobs[o + f_priority]
        score = priority == 0 and '0' or int_str(-priority)
      end
      local delay = c_delay or jobs[o + f_delay]
      local flags, parents = '', nil
      if has_deps then
        parents = jobs[o + F_PARENTS]
        if type(parents) ~= 'table' or #parents == 0 then parents = nil else flags = 'w' end
      end
      if has_limits then
        local lim = jobs[o + F_LIMIT]
        if type(lim) == 'table' and lim[1] then
          flags = flags .. 'l'
          writes[nw + 1], writes[nw + 2] = base .. 'l:' .. id, lim[1]
          nw = nw + 2
          if not limit_set[lim[1]] then
            -- The key's latest enqueue sets its numbers.
            limit_set[lim[1]] = true
            redis.call('HSET', base .. 'limits', lim[1], int_str(tonumber(lim[2]) or 0) .. '|'
              .. int_str(tonumber(lim[3]) or 0) .. '|' .. string.format('%.17g', tonumber(lim[4]) or 0))
          end
        end
      end
      local member
      if not parents then
        local n = first + i
        local low = n % 100
        local ls = SEQ_LOW[low]
        if not ls or n - low ~= seq_high then
          fmt_seq(n)
          seq_high, seq_hs, ls = n - low, SEQ_HIGH[(n - low) / 100], SEQ_LOW[low]
        end
        member = seq_hs .. ls .. id
      end
      if parents then
        -- Waiting: resolved below, once every job of the group is stored.
        writes[nw + 1] = keys[i]
        writes[nw + 2] = new_record(WAITING, jobs[o + 5], score, first + i, nows, '', nonce, flags, uk)
        nw = nw + 2
        waiting_add[#waiting_add + 1] = nows
        waiting_add[#waiting_add + 1] = id
        children[#children + 1] = i
        child_rows[#child_rows + 1], child_at[#child_at + 1] = jobs, o
      elseif delay > 0 then
        local due = fmt_time(now + delay)
        writes[nw + 1] = keys[i]
        writes[nw + 2] = new_record(SCHEDULED, jobs[o + 5], score, first + i, nows, due, nonce, flags, uk)
        nw = nw + 2
        sched_add[ns + 1], sched_add[ns + 2] = due, member
        ns = ns + 2
      else
        writes[nw + 1] = keys[i]
        writes[nw + 2] = new_record(QUEUED, jobs[o + 5], score, first + i, nows, '', nonce, flags, uk)
        nw = nw + 2
        if score ~= ready_score then
          ready_score, ready_list = score, pusher.list(score)
          nr = #ready_list
        end
        nr = nr + 1
        ready_list[nr] = member
        ready_count = ready_count + 1
      end
      writes[nw + 1], writes[nw + 2] = base .. 'b:' .. id, jobs[o + F_BODY]
      nw = nw + 2
      local meta = c_meta or jobs[o + f_meta]
      if meta ~= '' then
        writes[nw + 1], writes[nw + 2] = base .. 't:' .. id, meta
        nw = nw + 2
      end
      live_add[nl + 1], live_add[nl + 2] = nows, id
      nl = nl + 2
      if heard then event(base, 'enqueued', id, task_in(meta)) end
    end
  end
  call_chunked('MSET', nil, writes)
  call_chunked('ZADD', base .. 'live', live_add)
  pusher.flush()
  call_chunked('ZADD', sched, sched_add)
  -- A delayed job wakes idle workers too: their wait must now end at its due time.
  wake(wakekey, ready_count + (ns > 0 and 1 or 0))
  if #children > 0 then
    call_chunked('ZADD', base .. 'waiting', waiting_add)
    -- Count each dependant's parents by state, and register it on the ones
    -- still running; in batch order, so a dependant cancelled here is seen
    -- as failed by the later ones and cascades to the earlier ones.
    local ran = 0
    for ci = 1, #children do
      local jobs, o = child_rows[ci], child_at[ci]
      local id = jobs[o + F_ID]
      local parents = jobs[o + F_PARENTS]
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
      local mode = tonumber(jobs[o + F_AFTER]) or 0
      local delay = c_delay or jobs[o + f_delay]
      delay = delay > 0 and fmt_time(delay) or ''
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
