--[[
  The first half of retrying a job into another queue (retry_jobs with an
  edit naming a new queue): store it in the new queue, queued with fresh
  attempts and the same id; the caller then deletes it from its old queue
  (act 'moved'), so it is never lost: at worst, after a crash in between, it
  is in both.

  KEYS:
    1 <prefix>:{q}:live (the new queue; its other keys are built from its base)

  ARGV:
    1 job id
    2 the job, msgpack {body, priority, max_attempts, meta (t:<id>, or ''), {error record, ...},
      progress or '', unique key or '', enqueued_at (seconds), token}
    3 events: '1' ('c' in Cluster) to publish an `enqueued` event (see _events)

  Returns: 1 if stored; 0 if the id exists in that queue or a live job there
    (or a succeeded one inside its window) holds the unique key.
]]
-- @include _common

local id = ARGV[1]
local job = cmsgpack.unpack(ARGV[2])
local base = base_of(KEYS[1])
local now = now_time()
local nows = fmt_time(now)
events_on(ARGV[3], now)
if redis.call('EXISTS', base .. 'j:' .. id) == 1 then return 0 end
local uk = job[7] or ''
if uk ~= '' then
  if unique_holder(base .. 'unique', base .. 'uniqueheld', uk, now) then return 0 end
  redis.call('HSET', base .. 'unique', uk, id)
end
local score = job[2] == 0 and '0' or int_str(-job[2])
local seq = fmt_seq(redis.call('INCR', base .. 'seq'))
local flags = ''
local errors = job[5]
if #errors > 0 then
  call_chunked('RPUSH', base .. 'e:' .. id, errors)
  flags = '1'
end
if job[6] ~= '' then
  redis.call('SET', base .. 'p:' .. id, job[6])
  flags = flags .. 'p'
end
if job[4] ~= '' then redis.call('SET', base .. 't:' .. id, job[4]) end
local enqueued_at = fmt_time(tonumber(job[8]) or now)
redis.call('SET', base .. 'b:' .. id, job[1])
redis.call('SET', base .. 'j:' .. id, record(QUEUED, '0', int_str(job[3]), int_str(tonumber(job[9]) or 0), score, seq,
  enqueued_at, nows, '', '', '', '', '', '', flags, uk))
redis.call('ZADD', base .. 'live', enqueued_at, id)
local pusher = ready_pusher(base .. 'prio', base)
pusher.push(score, seq .. id)
pusher.flush()
wake(base .. 'wake', 1)
event(base, 'enqueued', id, task_in(job[4]))
events_publish()
return 1
