--[[
  Job lifecycle events (BackendOptions.events), pasted into every script by
  _common. A script that moves jobs turns them on (events_on), notes one
  event per job moved (event: kind, id, task) and publishes them at its end
  (events_publish): ONE PUBLISH per queue and call, on the channel
  `<prefix>:events:<queue>`, the payload a msgpack array of
  {kind, job id, task, queue, at (seconds, Redis time)} arrays. Best effort,
  as pub/sub is: a subscriber that is not listening misses them.

  Tasks come from each job's t:<id> key (task, then its tags, tab-separated:
  see _common), read a batch at a time by the callers that know many ids and
  one GET at a time (task_of) by the rare paths (cascades).
]]

local EVENTS = {on = false, everywhere = false, now = 0, lists = {}, order = {}, heard = {}}

-- flag: '1' publish when someone listens on this server, 'c' (Cluster)
-- always publish (a listener may be on another node), '' never.
local function events_on(flag, now)
  EVENTS.on = flag == '1' or flag == 'c' or flag == true
  EVENTS.everywhere = flag == 'c'
  EVENTS.now = now
end

local function channel_of(base)
  local prefix, queue = string.match(base, '^([^{]*):{(.*)}:$')
  return prefix .. ':events:' .. queue, queue
end

-- Whether events of the queue at `base` go out in this call: on, and (outside
-- Cluster) someone subscribed to its channel or to any pattern. Nobody
-- listening is the usual case, and then the events cost one PUBSUB call per
-- queue and call, not their per-job work (reading tasks, packing).
local function events_for(base)
  if not EVENTS.on then return false end
  local heard = EVENTS.heard[base]
  if heard == nil then
    heard = EVENTS.everywhere or redis.call('PUBSUB', 'NUMPAT') > 0
      or redis.call('PUBSUB', 'NUMSUB', (channel_of(base)))[2] > 0
    EVENTS.heard[base] = heard
  end
  return heard
end

-- The task of a job's meta value (t:<id>): the text before the first tab.
local function task_in(meta)
  if not meta then return '' end
  local tab = string.find(meta, '\t', 1, true)
  if tab then return string.sub(meta, 1, tab - 1) end
  return meta
end

local function task_of(base, id)
  if not events_for(base) then return '' end
  return task_in(redis.call('GET', base .. 't:' .. id))
end

-- Note an event; its payload array is {queue, at, kind, id, task, kind, id, task, ...}.
local function event(base, kind, id, task)
  if not events_for(base) then return end
  local list = EVENTS.lists[base]
  if not list then
    list = {false, EVENTS.now}
    EVENTS.lists[base] = list
    EVENTS.order[#EVENTS.order + 1] = base
  end
  local n = #list
  list[n + 1], list[n + 2], list[n + 3] = kind, id, task or ''
end

local function events_publish()
  for i = 1, #EVENTS.order do
    local base = EVENTS.order[i]
    local list = EVENTS.lists[base]
    if #list > 2 then
      local channel, queue = channel_of(base)
      list[1] = queue
      redis.call('PUBLISH', channel, cmsgpack.pack(list))
    end
  end
  EVENTS.lists, EVENTS.order = {}, {}
end
