--[[
  Delete finished jobs past their retention, and free unique keys whose
  unique_ttl window ended (the ack script does both as it goes; this catches
  queues that went quiet).

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
for g = 0, math.floor(#KEYS / GROUP) - 1 do
  local k = g * GROUP
  local base = base_of(KEYS[k + 1])
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
