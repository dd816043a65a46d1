--[[
  List the workers seen within GONE_KEPT seconds, read in one consistent view.
  Read-only. The worker hashes are built from the ZSET's base (the same slot).

  KEYS:
    1 <prefix>:{~workers}:beats

  ARGV: none.

  Returns: {now, id 1, {field, value, ...} of its hash, id 2, ...}; a worker
    whose hash already expired is left out.
]]
-- @no-writes: reads only (as a Redis 7 function it may run on a full server: scripts.py)
-- @include _common

local now = now_time()
local base = base_of(KEYS[1])
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], fmt_time(now - GONE_KEPT), '+inf')
local out = {fmt_time(now)}
for i = 1, #ids do
  local fields = redis.call('HGETALL', base .. 'w:' .. ids[i])
  if #fields > 0 then
    out[#out + 1] = ids[i]
    out[#out + 1] = fields
  end
end
return out
