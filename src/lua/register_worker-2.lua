--[[
  Register a starting worker: its record (replacing one of the same id), alive
  for ttl seconds from now, nothing running. Workers gone for GONE_KEPT seconds
  leave the beats ZSET here (their hashes expire on their own), so the registry
  stays bounded without a sweeper.

  KEYS:
    1 <prefix>:{~workers}:beats  2 <prefix>:{~workers}:w:<worker id>

  ARGV:
    1 worker id  2 hostname  3 pid  4 queues (msgpack array)  5 concurrency
    6 fastjobs version  7 ttl seconds  8 msgpack of an empty array (running)

  Returns: the backend's now (seconds, as a string).
]]
-- @include _common

local beats, worker = KEYS[1], KEYS[2]
local now = now_time()
local ttl = tonumber(ARGV[7])
redis.call('ZREMRANGEBYSCORE', beats, '-inf', '(' .. fmt_time(now - GONE_KEPT))
redis.call('DEL', worker)
redis.call('HSET', worker, 'hostname', ARGV[2], 'pid', ARGV[3], 'queues', ARGV[4], 'concurrency', ARGV[5],
  'version', ARGV[6], 'started_at', fmt_time(now), 'last_seen', fmt_time(now), 'ttl', ARGV[7], 'running', ARGV[8])
redis.call('ZADD', beats, fmt_time(now + ttl), ARGV[1])
redis.call('EXPIRE', worker, math.ceil(ttl + GONE_KEPT))
return fmt_time(now)
