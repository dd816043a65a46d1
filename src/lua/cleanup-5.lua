--[[
  Delete finished jobs past their retention, and free unique keys whose
  unique_ttl window ended (the ack script does both as it goes; this catches
  queues that went quiet). Also moves a store's succeeded jobs listed the
  old way (a LIST, before issue 13) into `done`, a chunk per call.

  KEYS, one group of 5 per queue (several groups only outside Redis Cluster):
    1 <prefix>:{q}:done       2 <prefix>:{q}:cancelled  3 <prefix>:{q}:dead
    4 <prefix>:{q}:unique            5 <prefix>:{q}:uniqueheld

  ARGV:
    1 result_ttl (seconds, for succeeded and cancelled)
    2 dead_ttl (seconds)
    3 limit: most entries removed per set per call

  Returns: {removed, more}: jobs removed (freed unique keys not counted), and 1
    if some sets had more to remove.
]]
-- @include _common

local GROUP = 5
local now = now_time()
local result_cutoff = now - tonumber(ARGV[1])
local dead_cutoff = now - tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local removed, more = 0, 0
-- Before issue 13 succeeded jobs were listed in a LIST, `succeeded`, of
-- "<finish time>|<flags>|<id>" entries: moved into `done` a chunk per call
-- (a job still succeeded keeps its finish time), so an upgraded store is
-- searched and trimmed like a new one.
local function adopt_legacy(base, done, limit)
  local legacy = base .. 'succeeded'
  if redis.call('TYPE', legacy)['ok'] ~= 'list' then return 0 end
  local entries = redis.call('LRANGE', legacy, 0, limit - 1)
  local add = {}
  for i = 1, #entries do
    local at, id = string.match(entries[i], '^([^|]*)|[^|]*|(.*)$')
    if id and tonumber(at) and parse(redis.call('GET', base .. 'j:' .. id)) == SUCCEEDED then
      add[#add + 1] = at
      add[#add + 1] = id
    end
  end
  call_chunked('ZADD', done, add)
  redis.call('LTRIM', legacy, #entries, -1)
  return #entries
end

for g = 0, math.floor(#KEYS / GROUP) - 1 do
  local k = g * GROUP
  local base = base_of(KEYS[k + 1])
  if adopt_legacy(base, KEYS[k + 1], limit) == limit then more = 1 end
  local counts = {
    trim_zset(KEYS[k + 1], base, result_cutoff, limit, SUCCEEDED),
    trim_zset(KEYS[k + 2], base, result_cutoff, limit, CANCELLED),
    trim_zset(KEYS[k + 3], base, dead_cutoff, limit, DEAD),
  }
  if trim_unique_held(KEYS[k + 4], KEYS[k + 5], now, limit) == limit then more = 1 end
  for i = 1, 3 do
    removed = removed + counts[i]
    if counts[i] == limit then more = 1 end
  end
end
return {removed, more}
