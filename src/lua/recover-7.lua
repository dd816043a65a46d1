--[[
  Take back the jobs of expired leases (claim does this too; this is for tools
  and tests). Limited jobs free their key's slot; a job that goes dead settles
  its dependants here (cascading).

  KEYS, one group of 7 per queue (several groups only outside Redis Cluster):
    1 <prefix>:{q}:prio    2 <prefix>:{q}:leases  3 <prefix>:{q}:leasecount
    4 <prefix>:{q}:dead    5 <prefix>:{q}:unique  6 <prefix>:{q}:seq
    7 <prefix>:{q}:wake

  ARGV:
    1 dead_ttl: seconds to keep jobs that go dead here (0: delete them)
    2 lease_expired: the message of the error recorded for each expired lease
      (fastjobs.job.LEASE_EXPIRED_MESSAGE)
    3 events: '1' ('c' in Cluster) to publish `released` / `dead` events (see _events)

  Returns: how many jobs were taken back (from at most 20 lease batches per queue per call).
]]
-- @include _common

local GROUP = 7
local dead_keep = tonumber(ARGV[1]) > 0
local lease_expired = ARGV[2]
local now = now_time()
local nows = fmt_time(now)
events_on(ARGV[3], now)
local total = 0
for g = 0, math.floor(#KEYS / GROUP) - 1 do
  local k = g * GROUP
  local prio = KEYS[k + 1]
  local n = recover(prio, KEYS[k + 2], KEYS[k + 3], KEYS[k + 4], KEYS[k + 5], KEYS[k + 6], base_of(prio), now, nows, dead_keep, lease_expired)
  wake(KEYS[k + 7], n)
  total = total + n
end
events_publish()
return total
