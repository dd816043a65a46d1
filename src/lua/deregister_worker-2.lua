--[[
  Remove a stopping worker's record at once.

  KEYS:
    1 <prefix>:{~workers}:beats  2 <prefix>:{~workers}:w:<worker id>

  ARGV:
    1 worker id

  Returns: 1 if the worker was known, 0 if not.
]]
-- @include _common

local listed = redis.call('ZREM', KEYS[1], ARGV[1])
local stored = redis.call('DEL', KEYS[2])
if listed + stored > 0 then return 1 end
return 0
