--[[
  Move due scheduled and retry-pending jobs to their ready set (claim does this
  too; this is for tools and tests). They keep their enqueue position.

  KEYS, one group of 4 per queue (several groups only outside Redis Cluster):
    1 <prefix>:{q}:ready   2 <prefix>:{q}:sched   3 <prefix>:{q}:retry
    4 <prefix>:{q}:wake

  ARGV: none.

  Returns: how many jobs were promoted (at most 1000 per set per call).
]]
-- @include _common

local GROUP = 4
local now = now_time()
local total = 0
for g = 0, math.floor(#KEYS / GROUP) - 1 do
  local k = g * GROUP
  local ready = KEYS[k + 1]
  local base = base_of(ready)
  local n = promote(ready, KEYS[k + 2], base, now) + promote(ready, KEYS[k + 3], base, now)
  wake(KEYS[k + 4], n)
  total = total + n
end
return total
