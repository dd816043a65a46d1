--[[
  Read one job: its record, body, result and error records.

  KEYS, one group of 4 per queue to look in (several groups only outside Redis
  Cluster; the first group holding the job wins):
    1 <prefix>:{q}:j:<id>  2 <prefix>:{q}:b:<id>  3 <prefix>:{q}:r:<id>
    4 <prefix>:{q}:e:<id>

  ARGV: none.

  Returns: {group (1-based; 0 if not found), now, record, body, result, {error, ...}}
    (missing values are nil)
]]
-- @include _common

local nows = fmt_time(now_time())
for g = 0, math.floor(#KEYS / 4) - 1 do
  local k = g * 4
  local values = redis.call('MGET', KEYS[k + 1], KEYS[k + 2], KEYS[k + 3])
  if values[1] then
    local ok, errors = pcall(redis.call, 'LRANGE', KEYS[k + 4], 0, -1)
    if not ok then errors = {} end
    return {g + 1, nows, values[1], values[2], values[3], errors}
  end
end
return {0, nows}
