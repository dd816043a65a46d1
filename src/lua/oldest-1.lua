--[[
  A queue's oldest ready jobs (list_jobs(QUEUED, queue) from its start: health
  checks and the dashboard ask for the oldest one): the queue's `live` index
  (score: enqueue time) read from its low end, a chunk at a time, keeping the
  jobs that are queued, or scheduled / retry-pending with their time come.
  Read-only. At most `budget` entries are examined: a queue whose oldest live
  jobs are all running or waiting for that long answers "incomplete", and the
  caller reads the queue's ready structures instead.

  KEYS:
    1 <prefix>:{q}:live (the job keys are built from its base)

  ARGV:
    1 how many jobs are wanted
    2 budget: live entries examined at most

  Returns: {complete, id, ...}: complete 1 when these are the oldest ready
    jobs (as many as wanted, or every ready job there is), 0 when the budget
    ran out first.
]]
-- @no-writes: reads only (as a Redis 7 function it may run on a full server: scripts.py)
-- @include _common

local wanted, budget = tonumber(ARGV[1]), tonumber(ARGV[2])
local base = base_of(KEYS[1])
local now = now_time()
local out = {1}
local examined = 0
while examined < budget do
  local n = math.min(100, budget - examined)
  local ids = redis.call('ZRANGE', KEYS[1], examined, examined + n - 1)
  if #ids == 0 then return out end
  local keys = {}
  for i = 1, #ids do keys[i] = base .. 'j:' .. ids[i] end
  local recs = mget(keys)
  for i = 1, #ids do
    local rec = recs[i]
    local state = state_of(rec)
    if state == QUEUED or ((state == SCHEDULED or state == RETRY_PENDING)
        and (tonumber((select(R_RUN_AT, parse(rec)))) or 0) <= now) then
      out[#out + 1] = ids[i]
      if #out - 1 >= wanted then return out end
    end
  end
  examined = examined + #ids
  if #ids < n then return out end
end
out[1] = 0
return out
