--[[
  One queue's part of a search page: jobs newest first by (at, id), after a
  position, read from the ordered indexes the scripts keep (see _common):
  `done`, `dead` and `cancelled` (score: finish time) and `live` (score:
  enqueue time). Each index is sought in O(log N): the position's member by
  ZREVRANK when it is still there, else its score by ZCOUNT and, inside a
  group of equal scores (one enqueue or ack batch), a binary search by rank.
  The indexes' heads are merged by (score, member) descending. Read-only.

  A candidate is checked against what no index seeks on (the state of a live
  job, the task, the tag): at most `budget` candidates are examined per call.

  KEYS:
    1 <prefix>:{q}:live (the other indexes and the job keys are built from its base)

  ARGV:
    1 the request, msgpack {sources, live states, position score or '', position id,
      since or '', until or '', task or '', tag or '', limit, budget}:
      sources: index names among 'done', 'dead', 'cancelled', 'live';
      live states: the states a `live` candidate must be in ({} = any). A
      scheduled or retry-pending job whose time has come counts as queued.

  Returns: {more, last score, last id, now, match, ...}: more 0 when nothing
    further can match in this queue; the last candidate examined (or '', '');
    each match {id, score, record, body, result, errors, progress, deps,
    parents, limit key, meta}.
]]
-- @no-writes: reads only (as a Redis 7 function it may run on a full server: scripts.py)
-- @include _common

local req = cmsgpack.unpack(ARGV[1])
local sources, live_states = req[1], req[2]
local pos_score, pos_id, since, until_ = req[3], req[4], req[5], req[6]
local task, tag, limit, budget = req[7], req[8], tonumber(req[9]), tonumber(req[10])
local base = base_of(KEYS[1])
local now = now_time()

local wanted = {}
for i = 1, #live_states do wanted[live_states[i]] = true end
local any_live = #live_states == 0
local checks = task ~= '' or tag ~= '' or not any_live
local SOURCE_STATE = {done = SUCCEEDED, dead = DEAD, cancelled = CANCELLED}

-- The rank (descending) of the first entry of `key` after the position.
local function seek(key)
  local start = 0
  if until_ ~= '' then start = redis.call('ZCOUNT', key, until_, '+inf') end
  if pos_score == '' then return start end
  local sc = redis.call('ZSCORE', key, pos_id)
  if sc and tonumber(sc) == tonumber(pos_score) then
    return math.max(start, redis.call('ZREVRANK', key, pos_id) + 1)
  end
  local lo = redis.call('ZCOUNT', key, '(' .. pos_score, '+inf')
  local hi = lo + redis.call('ZCOUNT', key, pos_score, pos_score)
  -- Equal scores sort by member, descending here: the first one below pos_id.
  while lo < hi do
    local mid = math.floor((lo + hi) / 2)
    local m = redis.call('ZREVRANGE', key, mid, mid)[1]
    if m < pos_id then hi = mid else lo = mid + 1 end
  end
  return math.max(start, lo)
end

local floor = since ~= '' and tonumber(since) or nil

-- Each source: where its next entries start (a rank), the entries fetched and
-- not yet merged, and whether it may hold more past them. Windows are
-- refilled as the merge needs them, `need` entries at a time, so a page that
-- matches at once reads no more than it returns.
local heads = {}
for s = 1, #sources do
  local key = base .. sources[s]
  heads[s] = {key = key, rank = seek(key), entries = {}, at = 1, more = true, index = sources[s]}
end

local function refill(head, need)
  local got = redis.call('ZREVRANGE', head.key, head.rank, head.rank + need - 1, 'WITHSCORES')
  head.rank = head.rank + need
  head.entries, head.at = {}, 1
  head.more = #got == 2 * need
  for i = 1, #got, 2 do
    if floor and tonumber(got[i + 1]) < floor then
      head.more = false
      break
    end
    head.entries[#head.entries + 1] = {got[i], got[i + 1], head.index, tonumber(got[i + 1])}
  end
end

-- The next `n` candidates in (score, member) descending order, merged from
-- the sources; fewer when every source ran out.
local function next_candidates(n)
  local out = {}
  while #out < n do
    local best
    for h = 1, #heads do
      local head = heads[h]
      if head.at > #head.entries and head.more then refill(head, n - #out) end
      local e = head.entries[head.at]
      if e then
        local b = best and best.entries[best.at]
        if not b or e[4] > b[4] or (e[4] == b[4] and e[1] > b[1]) then best = head end
      end
    end
    if not best then break end
    out[#out + 1] = best.entries[best.at]
    best.at = best.at + 1
  end
  return out
end

-- Examine candidates a batch at a time until the page is full or the budget spent.
local out = {0, '', '', fmt_time(now)}
local matches, examined = 0, 0
local last = nil
local exhausted = false
while matches < limit and examined < budget do
  local n = math.min(budget - examined, math.max(limit - matches, checks and 100 or 1))
  local batch = next_candidates(n)
  if #batch < n then exhausted = true end
  if #batch == 0 then break end
  local keys = {}
  for c = 1, #batch do
    keys[#keys + 1] = base .. 'j:' .. batch[c][1]
    keys[#keys + 1] = base .. 't:' .. batch[c][1]
  end
  local values = mget(keys)
  for c = 1, #batch do
    local e = batch[c]
    last = e
    examined = examined + 1
    local rec, meta = values[2 * c - 1], values[2 * c]
    -- The state is read alone (state_of): the whole record is parsed only
    -- for a delayed job's time (parsing costs more than the rest of a
    -- candidate's check).
    local state = state_of(rec)
    local ok = state ~= nil
    if ok then
      local expect = SOURCE_STATE[e[3]]
      if expect then
        ok = state == expect
      else
        if (state == SCHEDULED or state == RETRY_PENDING) and (tonumber((select(R_RUN_AT, parse(rec)))) or 0) <= now then
          state = QUEUED
        end
        ok = not (state == SUCCEEDED or state == DEAD or state == CANCELLED) and (any_live or wanted[state] == true)
      end
    end
    if ok and task ~= '' then ok = task_in(meta or nil) == task end
    if ok and tag ~= '' then
      ok = false
      if meta then
        local tab = string.find(meta, '\t', 1, true)
        if tab then
          local tags = '\t' .. string.sub(meta, tab + 1) .. '\t'
          ok = string.find(tags, '\t' .. tag .. '\t', 1, true) ~= nil
        end
      end
    end
    if ok then
      local id = e[1]
      local v = redis.call('MGET', base .. 'b:' .. id, base .. 'r:' .. id, base .. 'p:' .. id,
        base .. 'd:' .. id, base .. 'dp:' .. id, base .. 'l:' .. id)
      local okl, errors = pcall(redis.call, 'LRANGE', base .. 'e:' .. id, 0, -1)
      if not okl then errors = {} end
      out[#out + 1] = {id, e[2], rec, v[1], v[2], errors, v[3], v[4], v[5], v[6], meta}
      matches = matches + 1
      if matches >= limit then
        -- Stopped inside the batch: what follows this match is still to examine.
        if c < #batch then exhausted = false end
        break
      end
    end
  end
  if exhausted then break end
end
local more = not exhausted
if last then out[2], out[3] = last[2], last[1] end
out[1] = more and 1 or 0
return out
