--[[
  Resume a paused queue: claims lease its jobs again. Idle workers are woken,
  since their last look at this queue ignored its jobs.

  KEYS:
    1 <prefix>:{q}:paused  2 <prefix>:{q}:wake

  ARGV: none.

  Returns: 1 if the queue was paused, 0 if not (then nothing changes).
]]
-- @include _common

if redis.call('DEL', KEYS[1]) == 0 then return 0 end
wake(KEYS[2], WAKE_TOKENS)
return 1
