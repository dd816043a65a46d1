--[[
  Lease up to n ready jobs, serving the queues in KEYS order. For each queue it
  first takes back expired leases and promotes due delayed jobs, so one worker
  alone never needs a separate maintenance call. A paused queue (its `paused`
  key exists) gets that maintenance but leases nothing: its jobs stay queued,
  in order, until it is resumed.

  KEYS, one group of 12 per queue (several groups only outside Redis Cluster):
    1 <prefix>:{q}:ready   2 <prefix>:{q}:prio     3 <prefix>:{q}:sched
    4 <prefix>:{q}:retry   5 <prefix>:{q}:leases   6 <prefix>:{q}:leasecount
    7 <prefix>:{q}:dead    8 <prefix>:{q}:unique   9 <prefix>:{q}:seq
    10 <prefix>:{q}:wake   11 <prefix>:{q}:ghosts  12 <prefix>:{q}:paused

  ARGV:
    1 n: most jobs to lease in all
    2 lease: seconds from now until the leases expire
    3 dead_ttl: seconds to keep jobs that go dead here (0: delete them)
    4 lease_expired: the message of the error recorded for an expired lease
      taken back here (fastjobs.job.LEASE_EXPIRED_MESSAGE)
    5 events: '1' or 'c' (Cluster) to publish events (`started` per job leased, and
      those of the leases recovered here), '' not to (see _events)

  Returns: a flat array: first `more`, then one count per group (jobs leased
    from that queue), then {id, token, attempt, body} per job, in claim order.
    A damaged queue (a key of the wrong type: see damaged_key in _common)
    has, in place of its count, a string saying what is wrong: nothing was
    leased from it, the ready entries this call had taken from it are put
    back, and the other queues are served as usual.
    Each claim increments the job's attempt and token. `more` is 1 when the
    call stopped at its budget of skipped entries (below) with fewer than n
    jobs and ready entries possibly left: call again for the rest. Else 0.
    Ready entries that lead to no job are skipped, and the next ones taken in
    their place: leftovers of cancelled jobs, entries for a job already active
    or finished, a job named twice. Jobs whose stored data is unusable (record
    missing or unreadable, body missing) are not returned either: they are
    dead-lettered here with a CorruptJobError reason. At most
    MAINTENANCE_LIMIT entries are skipped per call, so one call never blocks
    Redis long behind a pile of leftovers (`more` then says so).

  Waiting jobs (dependants) are in no ready structure. Limited jobs (flag 'l')
  are leased only within their key's room: active < concurrency and leases in
  the last `per` seconds (Redis time) < rate, this call's own leases counted;
  one over the limit is parked (lq:<key>, counted as a skipped entry) and the
  claim goes on with the next entries, so a saturated key never blocks the
  queue. Keys whose wait is over (`limitwait`) first unpark their room back
  into `ready`, in the key's order. Expired leases recovered here release
  their limit slot and, for a job that goes dead, settle its dependants.
]]

-- @include _common

local GROUP = 12

-- Why MGET found no string at `key` (a job's record or body): missing, or a
-- value of another type (said, so that the dead-letter reason is true).
local function unusable(key, what)
  local t = redis.call('TYPE', key)['ok']
  if t == 'none' then return 'the ' .. what .. ' is missing from Redis' end
  return 'the ' .. what .. ' in Redis is a ' .. t .. ', not a string'
end

local want = tonumber(ARGV[1])
local lease = tonumber(ARGV[2])
local dead_keep = tonumber(ARGV[3]) > 0
local lease_expired = ARGV[4]
local now = now_time()
local nows = fmt_time(now)
local deadline = fmt_time(now + lease)
-- The times as layout 1 stores them: the numbers of their text.
local now6, deadline6 = tonumber(nows), tonumber(deadline)
events_on(ARGV[5], now)

local groups = math.floor(#KEYS / GROUP)
local out = {0}
for g = 1, groups do out[g + 1] = 0 end
local got, skipped = 0, 0
-- The current queue's popped ready entries, one table per reply (pop_ready):
-- what goes back if the queue turns out damaged half-way (Redis undoes
-- nothing itself).
local popped = {}

local function claim_queue(g)
  local k = (g - 1) * GROUP
  local ready, prio, sched, retry = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local leases, leasecount, dead, unique = KEYS[k + 5], KEYS[k + 6], KEYS[k + 7], KEYS[k + 8]
  local seqkey, wakekey, ghosts, paused = KEYS[k + 9], KEYS[k + 10], KEYS[k + 11], KEYS[k + 12]
  local base = base_of(ready)
  local N_QUEUED, N_SCHEDULED, N_RETRY_PENDING, N_ACTIVE = V1.state.QUEUED, V1.state.SCHEDULED, V1.state.RETRY_PENDING, V1.state.ACTIVE
  local V1_VERSION, LEASING, FLAGS_ALL, LIMITED = V1.version, V1.leasing, V1.bit.all, V1.bit.limited

  recover(prio, leases, leasecount, dead, unique, seqkey, base, now, nows, dead_keep, lease_expired)
  promote(ready, sched, base, now)
  promote(ready, retry, base, now)
  -- Limited keys whose wait is over put their parked jobs back first, so
  -- they are served in order with the rest (one call per queue when none).
  limit_promote(base, now)
  -- The flag lives in the queue's own slot, so this check stays atomic with
  -- the pops below in Cluster too.
  local is_paused = redis.call('EXISTS', paused) == 1
  if is_paused then
    -- Its wake-up tokens cannot be served until resume (which pushes new ones).
    redis.call('DEL', wakekey)
  end

  local leased, writes, seen = {}, {}, {}
  local nleased, nwrites = 0, 0
  local batch, batch_n = '', 0
  -- A leased record's first three bytes per flag mask, and its bytes 18 to 41
  -- (started_at, lease_until, lease_batch): the same for the queue's leases.
  local heads, lease_mid = {}, nil
  local drained = false
  -- Each round asks for as many entries as jobs are still wanted: a skipped
  -- entry is replaced by the next one, never left as a hole in the claim.
  while not is_paused and got < want and skipped < MAINTENANCE_LIMIT do
    local asked = math.min(want - got, MAINTENANCE_LIMIT - skipped)
    local members = pop_ready(ready, prio, base, asked, popped)
    if #members < asked then drained = true end
    local n = #members
    local ids, keys = {}, {}
    for i = 1, n do
      local id = string.sub(members[i], 17)
      ids[i] = id
      keys[2 * i - 1] = base .. 'j:' .. id
      keys[2 * i] = base .. 'b:' .. id
    end
    local values = mget(keys)
    local metas = nil
    if n > 0 and events_for(base) then
      local tkeys = {}
      for i = 1, n do tkeys[i] = base .. 't:' .. ids[i] end
      metas = mget(tkeys)
    end
    for i = 1, n do
      local id, rec, body = ids[i], values[2 * i - 1], values[2 * i]
      -- A layout 1 record: its leading fields (through token), those a lease
      -- reads, and the lengths that say whether it is whole; the rest is
      -- carried over as it is. A text record (an older fastjobs'): all its
      -- fields (fields_of), rewritten in layout 1. The rare paths below parse
      -- the whole record as strings.
      local state, mask, attempt, token, al, nl, ul, f
      local size = rec and #rec or 0
      if size >= 81 then
        local v, st, m, a, b, c, at, t = struct.unpack(LEASING, rec)
        if v == V1_VERSION then
          -- (Unreadable when its length does not add up: state stays nil.)
          if size == 81 + a + b + c then state, mask, al, nl, ul, attempt, token = st, m, a, b, c, at, t end
        else
          f = {fields_of(rec)}
        end
      elseif rec then
        f = {fields_of(rec)}
      end
      if f then state, attempt, token, mask = f[1], f[2], f[4], f[12] end
      if state ~= N_QUEUED and state ~= N_SCHEDULED and state ~= N_RETRY_PENDING and redis.call('SREM', ghosts, members[i]) == 1 then
        -- A cancelled job's leftover in a ready list.
        skipped = skipped + 1
      elseif seen[id] then
        -- Named twice (a leftover beside its live entry): dealt with once. The
        -- record read above may predate this call's own writes.
        skipped = skipped + 1
      elseif not state then
        seen[id] = true
        skipped = skipped + 1
        local reason = rec and 'the job record in Redis is unreadable' or unusable(keys[2 * i - 1], 'job record')
        dead_letter_bad(base, id, dead, unique, reason, nil, now, nows, dead_keep)
      elseif not body then
        seen[id] = true
        skipped = skipped + 1
        dead_letter_bad(base, id, dead, unique, unusable(keys[2 * i], 'job body'), {parse(rec)}, now, nows, dead_keep)
      elseif state ~= N_QUEUED and state ~= N_SCHEDULED and state ~= N_RETRY_PENDING then
        -- A ready entry for a job that is active, finished or waiting is a
        -- leftover: never lease a job twice, nor one whose parents run.
        skipped = skipped + 1
      elseif mask % FLAGS_ALL >= LIMITED and not limit_admit(base, id, select(R_SCORE, parse(rec)), members[i], now, nows) then
        -- Over its key's limit: parked with its position (see _common), and
        -- the claim goes on with the next entries.
        seen[id] = true
        skipped = skipped + 1
      else
        seen[id] = true
        if batch == '' then
          batch_n = redis.call('INCR', seqkey)
          batch = int_str(batch_n)
        end
        local new_attempt, new_token = attempt + 1, token + 1
        nleased = nleased + 1
        leased[nleased] = id
        nwrites = nwrites + 2
        writes[nwrites - 1] = keys[2 * i - 1]
        if f then
          writes[nwrites] = pack_record(N_ACTIVE, new_attempt, f[3], new_token, f[5], f[6], f[7], now6, f[9], deadline6,
            batch_n, mask, f[13], f[14], f[15], f[16])
        else
          -- Version, state and flags (per mask), the lengths as they are,
          -- attempt and token, the lease (per call), the rest as it is: by
          -- bytes, one struct.pack of two fields (of eleven: ~1,500
          -- instructions per job).
          local head = heads[mask]
          if not head then
            head = string.char(V1_VERSION, N_ACTIVE, mask)
            heads[mask] = head
          end
          if lease_mid == nil then lease_mid = struct.pack('>ddI8', now6, deadline6, batch_n) end
          writes[nwrites] = head .. string.sub(rec, 4, 9) .. struct.pack('>i4i4', new_attempt, new_token) .. lease_mid
            .. string.sub(rec, 42)
        end
        local o = #out
        out[o + 1], out[o + 2], out[o + 3], out[o + 4] = id, new_token, new_attempt, body
        if metas then event(base, 'started', id, task_in(metas[i])) end
        got = got + 1
        out[g + 1] = out[g + 1] + 1
      end
    end
    if drained then break end
  end
  if nleased > 0 then
    lease_open(leases, leasecount, base, batch, leased, deadline)
    call_chunked('MSET', nil, writes)
  end
  if is_paused then
    -- Skipped whole: later queues are served in this same call.
  elseif drained then
    -- Nothing is left ready: wake-up tokens left over from earlier enqueues
    -- would only cause spurious wake-ups.
    redis.call('DEL', wakekey)
  elseif got < want then
    -- Stopped at the skip budget: later queues wait for the next call, so
    -- that queue order holds.
    out[1] = 1
  end
end

-- After a damaged queue stopped claim_queue: the entries it had popped whose
-- job is still queued (it was about to be leased, or not looked at yet) go
-- back to the `ready` ZSET with their position; the others were settled
-- (dead-lettered, parked, leftovers dropped). Returns '' or what was lost.
local function put_back(base)
  local members, keys = {}, {}
  for r = 1, #popped do
    local round = popped[r]
    for i = 1, #round do
      members[#members + 1] = round[i]
      keys[#keys + 1] = base .. 'j:' .. string.sub(round[i], 17)
    end
  end
  if #members == 0 then return '' end
  local records = mget(keys)
  local add = {}
  for i = 1, #members do
    local state, _, _, _, score = parse(records[i])
    if state == QUEUED then
      add[#add + 1] = tonumber(score) and score or '0'
      add[#add + 1] = members[i]
    end
  end
  if #add == 0 or pcall(call_chunked, 'ZADD', base .. 'ready', add) then return '' end
  return '; ' .. (#add / 2) .. ' ready entries taken from it could not be put back (their jobs stay queued, unlisted)'
end

for g = 1, groups do
  if got >= want or skipped >= MAINTENANCE_LIMIT then break end
  local mark, got_before = #out, got
  popped = {}
  local ok, err = pcall(claim_queue, g)
  if not ok then
    -- Nothing of this queue was leased: its records are written last, in
    -- one MSET that the error came before. (A limited job met before the
    -- error stays counted in its key's lactive: the key's cap is one lower
    -- until the queue is repaired and the count settles.)
    for i = #out, mark + 1, -1 do out[i] = nil end
    got = got_before
    local base = base_of(KEYS[(g - 1) * GROUP + 1])
    EVENTS.lists[base] = {}  -- nothing of it was leased
    out[g + 1] = damage_report(err, base) .. put_back(base)
  end
end
events_publish()
return out
