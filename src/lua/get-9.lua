--[[
  Read one job: its record, body, result, error records, progress, dependency
  counts and parents, limit key, and task and tags.

  KEYS, one group of 9 per queue to look in (several groups only outside Redis
  Cluster; the first group holding the job wins):
    1 <prefix>:{q}:j:<id>  2 <prefix>:{q}:b:<id>  3 <prefix>:{q}:r:<id>
    4 <prefix>:{q}:e:<id>  5 <prefix>:{q}:p:<id>  6 <prefix>:{q}:d:<id>
    7 <prefix>:{q}:dp:<id> 8 <prefix>:{q}:l:<id>   9 <prefix>:{q}:t:<id>

  ARGV: none.

  Returns: {group (1-based; 0 if not found), now, record, body, result, {error, ...}, progress,
    dependency counts ("mode|pending|failed|delay"), parent ids (msgpack), limit key, task and tags}
    (missing values are nil); or {-group, now, type} when no group holds the
    job but that group's record key holds another type than a string (the
    job is there, damaged: not "not found").
]]
-- @no-writes: reads only (as a Redis 7 function it may run on a full server: scripts.py)
-- @include _common

local nows = fmt_time(now_time())
local damaged = nil
for g = 0, math.floor(#KEYS / 9) - 1 do
  local k = g * 9
  local values = redis.call('MGET', KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 5], KEYS[k + 6], KEYS[k + 7], KEYS[k + 8], KEYS[k + 9])
  if values[1] then
    local ok, errors = pcall(redis.call, 'LRANGE', KEYS[k + 4], 0, -1)
    if not ok then errors = {} end
    return {g + 1, nows, values[1], values[2], values[3], errors, values[4], values[5], values[6], values[7], values[8]}
  end
  if not damaged then
    local t = redis.call('TYPE', KEYS[k + 1])['ok']
    if t ~= 'none' then damaged = {-(g + 1), nows, t} end
  end
end
return damaged or {0, nows}
