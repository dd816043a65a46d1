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

local EVENTS = {on = false, now = 0, lists = {}, order = {}}

local function events_on(flag, now)
  EVENTS.on = flag == '1' or flag == 'e' or flag == true
  EVENTS.now = now
end

-- The task of a job's meta value (t:<id>): the text before the first tab.
local function task_in(meta)
  if not meta then return '' end
  local tab = string.find(meta, '\t', 1, true)
  if tab then return string.sub(meta, 1, tab - 1) end
  return meta
end

local function task_of(base, id)
  if not EVENTS.on then return '' end
  return task_in(redis.call('GET', base .. 't:' .. id))
end

local function event(base, kind, id, task)
  if not EVENTS.on then return end
  local list = EVENTS.lists[base]
  if not list then
    list = {}
    EVENTS.lists[base] = list
    EVENTS.order[#EVENTS.order + 1] = base
  end
  list[#list + 1] = {kind, id, task or '', false, EVENTS.now}
end

local function events_publish()
  if not EVENTS.on then return end
  for i = 1, #EVENTS.order do
    local base = EVENTS.order[i]
    local prefix, queue = string.match(base, '^([^{]*):{(.*)}:$')
    local list = EVENTS.lists[base]
    if #list > 0 then
      for j = 1, #list do list[j][4] = queue end
      redis.call('PUBLISH', prefix .. ':events:' .. queue, cmsgpack.pack(list))
    end
  end
  EVENTS.lists, EVENTS.order = {}, {}
end
