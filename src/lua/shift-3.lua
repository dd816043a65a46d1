--[[
  Bring the due time of every scheduled and retry-pending job `seconds`
  earlier: fastjobs.testing.advance_time moves the jobs, since the server's
  clock cannot move. Members keep their <seq>, so a job that falls due keeps
  its enqueue position, as promote gives it; the record's run_at follows the
  score. Every such job in one call: a test helper, not for production stores.

  KEYS, one group of 3 per queue (several groups only outside Redis Cluster):
    1 <prefix>:{q}:sched   2 <prefix>:{q}:retry   3 <prefix>:{q}:wake

  ARGV:
    1 seconds (>= 0)

  Returns: how many jobs were moved.
]]
-- @include _common

local GROUP = 3
local seconds = tonumber(ARGV[1])
local total = 0
for g = 0, math.floor(#KEYS / GROUP) - 1 do
  local k = g * GROUP
  local base = base_of(KEYS[k + 1])
  local moved = 0
  for s = 1, 2 do
    local delayed = KEYS[k + s]
    local entries = redis.call('ZRANGE', delayed, 0, -1, 'WITHSCORES')
    local add, keys, dues = {}, {}, {}
    for i = 1, #entries, 2 do
      local due = fmt_time(tonumber(entries[i + 1]) - seconds)
      add[#add + 1] = due
      add[#add + 1] = entries[i]
      keys[#keys + 1] = base .. 'j:' .. string.sub(entries[i], 17)
      dues[#dues + 1] = due
    end
    if #keys > 0 then
      call_chunked('ZADD', delayed, add)
      local records = mget(keys)
      local writes = {}
      for i = 1, #keys do
        local fields = {parse(records[i])}
        if fields[1] then  -- an unreadable record is left for claim to dead-letter
          fields[R_RUN_AT] = dues[i]
          writes[#writes + 1] = keys[i]
          writes[#writes + 1] = record_of(fields)
        end
      end
      call_chunked('MSET', nil, writes)
    end
    moved = moved + #keys
  end
  wake(KEYS[k + 3], moved)
  total = total + moved
end
return total
